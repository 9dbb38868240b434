import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem

/// What a snapshot of many files keeps in memory (issue 17).
@Suite("Snapshot memory")
struct SnapshotMemoryTests {
    final class Token: Sendable {}

    /// A pool job captured a snapshot's whole prepared list: kept in the
    /// pool's queue after it ran, that list stayed through the commit.
    @Test("what the commit keeps of a stored file besides its record fields is 48 bytes")
    func storeFactsSize() {
        // The rename's place sits in the padding after the two flags.
        #expect(MemoryLayout<Snapshotter.StoreFacts>.stride == 48)
    }

    @Test("a pool job's captures are released once it has run")
    func poolReleasesRunJobs() async throws {
        let pool = BlockingPool(threads: 1)
        weak var weakToken: Token?
        do {
            let token = Token()
            weakToken = token
            try await pool.run { withExtendedLifetime(token) {} }
        }
        // One thread: this job is taken after the last one has returned.
        try await pool.run {}
        #expect(weakToken == nil)
    }
}
