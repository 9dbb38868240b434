#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore

/// What a commit beside the barrier trusts without a look: exactly the
/// content whose rename started after it took the writer lock.
@Suite("Placement beside a commit")
struct PlacementTests {
    @Test("content renamed after the lock was taken is placed; content renamed before, or being renamed, is looked at")
    func placedAfterLock() async throws {
        try await withFixture { fx in
            let store = try ContentStore(root: fx.root)
            let batch = try DurableBatch(store: store)
            let count = 24
            var digests: [Digest] = []
            for i in 0..<count {
                digests.append(try StoredLookUpTests.ingest(store, batch, patternBytes(300 + i, seed: UInt64(i)), in: fx.base, "f\(i)").digest)
            }
            let half = (count + 1) / 2
            // The barrier stops before rename `half` until the lock is "taken".
            let lockTaken = Gate()
            let taken = Locked(false)
            let started = Locked<[Int]>([])
            let placement = Placement { ordinal in
                started.withLock { $0.append(ordinal) }
                if ordinal == half { lockTaken.locked { _ = lockTaken.wait(until: { taken.withLock { $0 } }) } }
            }
            BlockingPool.shared.submit { placement.end(Result { try batch.barrier(placement: placement) }) }
            placement.waitForHalf()
            let underLock = placement.lockTaken()
            let before = started.withLock { $0 }
            lockTaken.locked {
                taken.withLock { $0 = true }
                lockTaken.broadcast()
            }
            #expect(try placement.finish().isEmpty)
            #expect(started.withLock { $0 } == Array(0..<count), "renamed in order, each reported first")
            #expect(before.max() == half, "the lock was taken while rename \(half) was about to start")
            // In the batch's order (the order content was deferred).
            for (ordinal, d) in digests.enumerated() {
                #expect(underLock.placed(d) == (ordinal > half), "content \(ordinal) of \(count)")
                #expect(try store.contentStat(d) != nil, "content \(ordinal) is in place")
            }
            #expect(try !underLock.placed(Digest(hex: "123456789abcdef")), "content of no batch")
            // Asked again, the barrier's outcome is the same.
            #expect(try placement.finish().isEmpty)
        }
    }

    @Test("a barrier that fails wakes the commit and hands it the error")
    func failedBarrier() async throws {
        let placement = Placement()
        BlockingPool.shared.submit { placement.end(.failure(SnapshotterError(.io, "syncfs failed"))) }
        placement.waitForHalf()
        let underLock = placement.lockTaken()
        #expect(!underLock.placed(try Digest(hex: "123456789abcdef")))
        #expect(throws: SnapshotterError.self) { try placement.finish() }
    }
}
