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

/// What a lease protects (snapshots from eviction and delete), and when a
/// lease dies with its holder.
@Suite("Leases")
struct LeaseTests {
    @Test("A leased snapshot is neither evicted nor deleted; after release it can be")
    func leasesProtect() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        for i in 0..<3 { try await fx.make(store, i) }
        try fx.age(store, [0, 1, 2])
        let key = SnapshotKey(name: "sb", version: "v0")
        let info = try await store.info(name: "sb", version: "v0")
        try await store.withLease(snapshots: [key], digests: info.files.map(\.digest)) {
            let r = try await store.gc(policy: gcPolicy(high: 1, low: 0, batch: 10))
            #expect(r.snapshotsEvicted == 2)
            #expect(try await fx.versions(store) == ["v0"])
            await #expect { try await store.delete(name: "sb", version: "v0") } throws: { ($0 as? SnapshotterError)?.code == .busy }
        }
        #expect(try store.activeLeases().snapshots.isEmpty)
        try await store.delete(name: "sb", version: "v0")
    }

    @Test("A lease record of an older version (pid and start time) expires when its process dies")
    func deadProcessLeaseExpires() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        try await fx.make(store, 0)
        try fx.age(store, [0])
        // A real process holds the lease; it is killed.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["60"]
        try child.run()
        let pid = child.processIdentifier
        var w = ByteWriter()
        w.u32(UInt32(bitPattern: pid))
        w.u64(cshim_process_start_ticks_for_tests(pid))
        w.u64(1)
        let lease = Lease(key: w.bytes, snapshots: [SnapshotKey(name: "sb", version: "v0")], digests: [])
        try store.meta.write { try $0.putLease(lease) }
        var r = try await store.gc(policy: gcPolicy(high: 1, low: 0, batch: 10))
        #expect(r.snapshotsEvicted == 0) // the holder is alive
        kill(pid, SIGKILL)
        child.waitUntilExit()
        r = try await store.gc(policy: gcPolicy(high: 1, low: 0, batch: 10))
        #expect(r.snapshotsEvicted == 1)
        #expect(try store.activeLeases().snapshots.isEmpty)
    }
}

/// Start time of a process, as leases record it.
func cshim_process_start_ticks_for_tests(_ pid: Int32) -> UInt64 {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    return fields.count > 19 ? UInt64(fields[19]) ?? 0 : 0
}
