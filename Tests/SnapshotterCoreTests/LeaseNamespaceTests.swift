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

/// Leases held by processes in other PID namespaces (as in another
/// container sharing the root): the child runs under `unshare --pid --fork
/// --mount-proc`, so its pid and /proc mean nothing to this process. It
/// stops at a phase of its operation (holding what it holds then) until
/// told to go on.
@Suite("Leases across PID namespaces", .serialized)
struct LeaseNamespaceTests {
    static let canUnshare = getuid() == 0 && access("/usr/bin/unshare", X_OK) == 0

    func zero(grace: Double = 3600) -> GCPolicy {
        var p = GCPolicy()
        p.highWatermarkPercent = 0
        p.lowWatermarkPercent = 0
        p.batchSize = 10
        p.minRetentionSeconds = 0
        p.orphanGraceSeconds = grace
        return p
    }

    /// A child in a new PID namespace running `op`, stopped at `phase`.
    func heldChild(_ fx: GCFixture, _ op: String, _ phase: String, _ args: [String]) async throws -> Child {
        let child = try Child("/usr/bin/unshare", ["--pid", "--fork", "--mount-proc", try testChildPath(), op, phase, fx.root] + args,
                              scratch: fx.dir, talk: true)
        let line = await child.readLine()
        guard line == "held" else {
            let exit = await child.wait()
            throw TestError.setup("the child did not stop at \(phase): \(line ?? "no output"), \(exit)")
        }
        return child
    }

    func finish(_ child: Child) async throws {
        try child.send("go")
        let line = await child.readLine()
        let exit = await child.wait()
        #expect(line == "done" && exit.status == 0 && !exit.signaled, "\(exit)")
    }

    func leaseFiles(_ fx: GCFixture) throws -> [String] {
        try names(in: fx.root + "/leases")
    }

    @Test("A restorer in another PID namespace loses nothing to a collection with zero watermarks",
          .enabled(if: canUnshare))
    func restorerInOtherNamespace() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        for i in 0..<4 { try await fx.make(store, i) }
        try fx.age(store, [0, 1, 2, 3])
        let d0 = try await store.info(name: "sb", version: "v0").files[0].digest
        let child = try await heldChild(fx, "restore", "exporting", ["sb", "v0", fx.dir + "/out"])
        let r = try await store.gc(policy: zero())
        #expect(r.snapshotsEvicted == 3)
        #expect(try await fx.versions(store) == ["v0"])
        #expect(exists(fx.root + "/storage/content/xxh3/" + d0.hex))
        try await finish(child)
        #expect(FileManager.default.contentsEqual(atPath: fx.dir + "/src/f0", andPath: fx.dir + "/out/f0"))
        #expect(try await store.verify().isConsistent)
        // Released: the next collection may take it.
        _ = try await store.gc(policy: zero())
        #expect(try await fx.versions(store) == [])
    }

    @Test("The lease of a SIGKILLed holder in another PID namespace is reclaimed by the next collection",
          .enabled(if: canUnshare))
    func killedHolderInOtherNamespace() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        try await fx.make(store, 0)
        try fx.age(store, [0])
        let child = try await heldChild(fx, "restore", "exporting", ["sb", "v0", fx.dir + "/out"])
        var r = try await store.gc(policy: zero())
        #expect(r.snapshotsEvicted == 0)
        #expect(try store.activeLeases().snapshots == [SnapshotKey(name: "sb", version: "v0")])
        #expect(try leaseFiles(fx).count == 1)
        // unshare waits for its child: once it exited, the holder is gone.
        let holders = child.children
        #expect(holders.count == 1)
        for pid in holders { kill(pid, SIGKILL) }
        _ = await child.wait()
        r = try await store.gc(policy: zero())
        #expect(r.snapshotsEvicted == 1)
        #expect(try store.activeLeases().snapshots.isEmpty)
        #expect(try store.meta.read { try $0.leaseCount() } == 0)
        #expect(try leaseFiles(fx).isEmpty)
    }

    @Test("Deleting a snapshot a restorer in another PID namespace uses is refused until it is done",
          .enabled(if: canUnshare))
    func deleteWhileRestoringInOtherNamespace() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        try await fx.make(store, 0)
        let child = try await heldChild(fx, "restore", "exporting", ["sb", "v0", fx.dir + "/out"])
        await #expect { try await store.delete(name: "sb", version: "v0") } throws: { ($0 as? SnapshotterError)?.code == .busy }
        try await finish(child)
        #expect(FileManager.default.contentsEqual(atPath: fx.dir + "/src/f0", andPath: fx.dir + "/out/f0"))
        try await store.delete(name: "sb", version: "v0")
        #expect(try await fx.versions(store) == [])
    }

    @Test("A snapshot in another PID namespace survives a delete of its shared content and a collection",
          .enabled(if: canUnshare))
    func snapshotInOtherNamespace() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        try await fx.make(store, 0)
        try await fx.make(store, 1)
        try fx.age(store, [0, 1])
        // The child snapshots f0 (v0's content) and f1 (v1's), stopped
        // once both are stored and before it commits; meanwhile both
        // snapshots go, and the collection sweeps unrecorded content.
        let child = try await heldChild(fx, "snapshot", "committing", ["sb", "new", fx.dir + "/src", "f0", "f1"])
        try await store.delete(name: "sb", version: "v0")
        let r = try await store.gc(policy: zero(grace: 0))
        #expect(r.snapshotsEvicted == 1)
        try await finish(child)
        _ = try await store.restore(RestoreRequest(name: "sb", version: "new", outputDir: fx.dir + "/out"))
        for f in ["f0", "f1"] {
            #expect(FileManager.default.contentsEqual(atPath: fx.dir + "/src/" + f, andPath: fx.dir + "/out/" + f))
        }
        #expect(try await store.verify().isConsistent)
    }

    @Test("Lease records naming a missing, foreign or unlocked lease file are dead; a held one in this process is alive")
    func leaseFileStates() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        try await fx.make(store, 0)
        try await fx.make(store, 1)
        try await fx.make(store, 2)
        try fx.age(store, [0, 1, 2])
        let dir = fx.root + "/leases"
        try makeDirs(dir)
        let unlocked = String(repeating: "a", count: 32)
        let symlink = String(repeating: "b", count: 32)
        let missing = String(repeating: "c", count: 32)
        try writeFile(dir + "/" + unlocked, "")
        try FileManager.default.createSymbolicLink(atPath: dir + "/" + symlink, withDestinationPath: fx.dir + "/src/f0")
        try store.meta.write { txn in
            for (i, name) in [unlocked, symlink, missing].enumerated() {
                try txn.putLease(Lease(key: Lease.newKey(), snapshots: [SnapshotKey(name: "sb", version: "v\(i)")],
                                                   digests: [], holder: name))
            }
        }
        try await store.withLease(snapshots: [SnapshotKey(name: "sb", version: "v2")], digests: []) {
            let r = try await store.gc(policy: zero())
            #expect(r.snapshotsEvicted == 2)
            #expect(try await fx.versions(store) == ["v2"])
            // Only this process's own (locked) file is left; the symlink's
            // target is untouched.
            #expect(try leaseFiles(fx) == [try store.meta.leaseFile.name()])
            #expect(exists(fx.dir + "/src/f0"))
        }
    }
}
