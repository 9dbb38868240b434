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

/// With durableRestore, every written file is fsynced before its rename and
/// every changed directory (with the parents of those made) before success;
/// without it, restore fsyncs nothing in the output.
@Suite("Durable restore")
struct DurableRestoreTests {
    /// What was fsynced under `prefix` while `body` ran.
    static func synced(under prefix: String, _ body: () async throws -> Void) async throws -> [String] {
        let seen = Collector<String>()
        let id = SyncProbe.watch { if $0 == prefix || $0.hasPrefix(prefix + "/") { seen.append($0) } }
        defer { SyncProbe.unwatch(id) }
        try await body()
        return seen.values
    }

    @Test("a durable restore fsyncs each written file and each directory it changed; a plain one none",
          arguments: [true, false])
    func fsyncs(durable: Bool) async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/top", "top\n")
            try writeFile(fx.base + "/a/x", "x\n")
            try writeFile(fx.base + "/b/c/y", "y\n")
            try writeFile(fx.base + "/b/c/ro", "read-only\n")
            var options = StoreOptions()
            options.gc.intervalSeconds = 0
            options.durableRestore = durable
            let store = try Snapshotter(root: fx.root, options: options)
            let dir = try Sys.realpath(fx.dir)
            let out = dir + "/new/out"
            var info: SnapshotInfo?
            let seen = try await Self.synced(under: dir) {
                do {
                    info = try await store.snapshot(SnapshotRequest(name: "d", version: "v1", baseDir: fx.base, files: [
                        FileRequest("top"), FileRequest("a/x"), FileRequest("b/c/y"), FileRequest("b/c/ro", readOnly: true),
                    ])).info
                    _ = try await store.restore(RestoreRequest(name: "d", version: "v1", outputDir: out))
                } catch {
                    await store.close()
                    throw error
                }
                await store.close()
            }
            try expectRestored(try #require(info), in: out, store: fx)
            let inOutput = seen.filter { $0.hasPrefix(dir + "/new") || $0 == dir }
            guard durable else {
                #expect(inOutput.isEmpty, "a plain restore fsynced \(inOutput)")
                return
            }
            // The three decoded files, under their temporary names.
            let files = inOutput.filter { isTempName(($0 as NSString).lastPathComponent) }
            #expect(files.count == 3, "files fsynced: \(files)")
            #expect(Set(files.map { ($0 as NSString).deletingLastPathComponent }) == [out, out + "/a", out + "/b/c"])
            // Directories: those with new entries, and the parents of those
            // made (the output root and its parent were made too).
            let dirs = Set(inOutput.filter { !isTempName(($0 as NSString).lastPathComponent) })
            #expect(dirs == [dir, dir + "/new", out, out + "/a", out + "/b", out + "/b/c"], "directories fsynced: \(dirs.sorted())")
        }
    }
}
