import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote
#if canImport(Glibc)
import Glibc
#endif

@Suite("Store statistics")
struct StatsTests {
    @Test("stats come from the metadata")
    func stats() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        try await fx.make(store, 0)
        try await fx.make(store, 1, readOnly: true)
        try fx.age(store, [1, 0])
        let s = try await store.stats()
        #expect(s.snapshots == 2 && s.contentFiles == 2)
        #expect(s.storeBytes >= 3_000_000) // two encodings and one link
        #expect(s.oldestAccessNanos! < Sys.nowNanos() - 3_000_000_000_000)
        #expect(s.disk.totalBytes == 10_000_000)
    }
}
