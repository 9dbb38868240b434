import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// A failed restore takes back what it made, and a rerun clears the
/// temporary files a killed one left, so running it again works.
@Suite("Restore cleanup")
struct RestoreCleanupTests {
    /// Every entry under `dir` (directories too), relative.
    static func tree(_ dir: String) throws -> [String] {
        guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
        var out: [String] = []
        while let rel = e.nextObject() as? String { out.append(rel) }
        return out.sorted()
    }

    @Test("a local restore that fails midway leaves the output as it was; a rerun after repair succeeds")
    func failedLocalRestoreTakesBackItsFiles() async throws {
        try await withFixture { fx in
            var requests: [FileRequest] = []
            for i in 0..<12 {
                let rel = i < 6 ? "a/f\(i)" : "b/c/f\(i)"
                try writeFile(fx.base + "/" + rel, "file \(i)\n")
                requests.append(FileRequest(rel, readOnly: i % 2 == 0))
            }
            // Sorted last, so with one export at a time every other file is
            // already in place when it fails.
            try writeFile(fx.base + "/z/last", "the last file\n")
            requests.append(FileRequest("z/last"))
            let out = fx.output()
            try writeFile(out + "/keep.txt", "mine\n")
            try makeDirs(out + "/a")
            let before = try Self.tree(out)
            var options = StoreOptions()
            options.gc.intervalSeconds = 0
            options.restoreConcurrency = 1
            let store = try Snapshotter(root: fx.root, options: options)
            do { try await Self.failThenRepair(store, fx, out: out, before: before, requests: requests) } catch {
                await store.close()
                throw error
            }
            await store.close()
        }
    }

    static func failThenRepair(_ store: Snapshotter, _ fx: Fixture, out: String, before: [String],
                               requests: [FileRequest]) async throws {
        let info = try await store.snapshot(SnapshotRequest(name: "c", version: "v1", baseDir: fx.base, files: requests)).info
        let last = try #require(info.files.first { $0.relativePath == "z/last" })
        let content = fx.contentDir + "/" + last.digest.hex
        let good = try readFile(content)
        var bad = good
        bad[bad.count - 1] ^= 0xff
        try posix("chmod") { chmod(content, 0o644) }
        try writeFile(content, bad, mode: 0o444, mtimeNanos: nil)

        await expectError(.corrupt) {
            try await store.restore(RestoreRequest(name: "c", version: "v1", outputDir: out))
        }
        #expect(try Self.tree(out) == before, "the output is as it was")

        try posix("chmod") { chmod(content, 0o644) }
        try writeFile(content, good, mode: 0o444, mtimeNanos: nil)
        _ = try await store.restore(RestoreRequest(name: "c", version: "v1", outputDir: out))
        try expectRestored(info, in: out, store: fx)
        #expect(try readText(out + "/keep.txt") == "mine\n")
    }

    @Test("a rerun removes temporary files whose writer is gone, in the directories it writes, and no others")
    func rerunSweepsStaleTemps() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/d/x", "x\n")
            try writeFile(fx.base + "/y", "y\n")
            let out = fx.output()
            try makeDirs(out + "/d")
            try makeDirs(out + "/other")
            let me = ProcessIdentity.pid, start = ProcessIdentity.startTicks
            // A killed restore's: this pid but another start time (the pid
            // was reused), and an older version's name whose pid is gone.
            let deadPid = try await Self.exitedChildPid(fx)
            let stale = [".snapshotter-tmp-\(me).\(start &+ 1)-0-abc", ".snapshotter-tmp-\(deadPid)-3-def"]
            // A live writer's (this process), and one in a directory the
            // restore does not write to.
            let live = ".snapshotter-tmp-\(me).\(start)-99999-live"
            for name in stale + [live] { try writeFile(out + "/d/" + name, "left behind\n") }
            try writeFile(out + "/" + stale[0], "left behind\n")
            try writeFile(out + "/other/" + stale[0], "left behind\n")
            // A neighbour who can write the output plants a directory under
            // a stale-looking name: it cannot be unlinked, and must not stop
            // the restore.
            let planted = ".snapshotter-tmp-\(deadPid)-7-dir"
            try makeDirs(out + "/d/" + planted + "/inside")
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "t", version: "v1", baseDir: fx.base,
                                                                    files: [FileRequest("d/x"), FileRequest("y")])).info
                _ = try await store.restore(RestoreRequest(name: "t", version: "v1", outputDir: out))
                try expectRestored(info, in: out, store: fx)
            }
            #expect(try names(in: out + "/d").sorted() == [live, planted, "x"].sorted())
            #expect(try names(in: out).sorted() == ["d", "other", "y"])
            #expect(try names(in: out + "/other") == [stale[0]])
        }
    }

    /// The pid of a child that has exited (and been reaped).
    static func exitedChildPid(_ fx: Fixture) async throws -> Int32 {
        let child = try Child("/bin/true", [], scratch: fx.dir)
        let exit = await child.wait()
        #expect(exit.status == 0 && !exit.signaled)
        return child.pid
    }
}
