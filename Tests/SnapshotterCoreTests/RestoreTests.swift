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

/// Restore does not clobber, gives each file its own recorded metadata
/// without touching what the store links to, and falls back to the content
/// when a read-only link is gone.
@Suite("Restore")
struct RestoreTests {
    @Test("restore refuses to replace an existing file unless asked to overwrite")
    func restoreDoesNotClobberWithoutOverwrite() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/a.txt", "from snapshot a\n", mode: 0o640)
            try writeFile(fx.base + "/b.txt", "from snapshot b\n", mode: 0o444)
            try writeFile(fx.base + "/c/d.txt", "from snapshot d\n")
            let out = fx.output()
            try writeFile(out + "/b.txt", "user's file\n")
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "clobber", version: "1", baseDir: fx.base, files: [
                    FileRequest("a.txt"), FileRequest("b.txt", readOnly: true), FileRequest("c/d.txt"),
                ])).info
                await expectError(.alreadyExists) {
                    try await store.restore(RestoreRequest(name: "clobber", version: "1", outputDir: out))
                }
                #expect(try readText(out + "/b.txt") == "user's file\n")
                #expect(try allFiles(under: out) == ["b.txt"], "refused before writing anything")

                _ = try await store.restore(RestoreRequest(name: "clobber", version: "1", outputDir: out, overwrite: true))
                try expectRestored(info, in: out, store: fx)
                // Overwriting a restore with itself (same hard links) works too.
                _ = try await store.restore(RestoreRequest(name: "clobber", version: "1", outputDir: out, overwrite: true))
                try expectRestored(info, in: out, store: fx)
                #expect(try allFiles(under: out) == ["a.txt", "b.txt", "c/d.txt"], "no temporary file is left")

                // A directory in the way is never replaced.
                let blocked = fx.output("blocked")
                try makeDirs(blocked + "/a.txt")
                await expectError(.alreadyExists) {
                    try await store.restore(RestoreRequest(name: "clobber", version: "1", outputDir: blocked, overwrite: true))
                }
            }
        }
    }

    @Test("restoring a read-only file changes the metadata of no other file through a shared inode")
    func readOnlyRestoreLeavesSharedInodeAlone() async throws {
        try await withFixture { fx in
            // Two read-only files with the same bytes but their own mode and
            // mtime: the store keeps one link, the inode of the first.
            let bytes = patternBytes(10_000, seed: 5)
            let laterMtime = fixedMtime + 5_000_000_000
            try writeFile(fx.base + "/x/a.bin", bytes, mode: 0o444, mtimeNanos: fixedMtime)
            try writeFile(fx.base + "/y/b.bin", bytes, mode: 0o440, mtimeNanos: laterMtime)
            try await withStore(fx) { store in
                let one = try await store.snapshot(SnapshotRequest(name: "inode-meta", version: "1", baseDir: fx.base,
                                                                   files: [FileRequest("x/a.bin", readOnly: true)])).info
                let two = try await store.snapshot(SnapshotRequest(name: "inode-meta", version: "2", baseDir: fx.base,
                                                                   files: [FileRequest("y/b.bin", readOnly: true)])).info
                #expect(one.files[0].digest == two.files[0].digest)
                _ = try await store.restore(RestoreRequest(name: "inode-meta", version: "2", outputDir: fx.output("two")))
                let source = try statOf(fx.base + "/x/a.bin")
                #expect(source.st_mode & 0o777 == 0o444 && mtimeNanos(source) == fixedMtime,
                        "restoring y/b.bin changed x/a.bin, the snapshot source the store links to")
                _ = try await store.restore(RestoreRequest(name: "inode-meta", version: "1", outputDir: fx.output("one")))

                // Each restored file has its own recorded metadata...
                for (info, out) in [(one, fx.output("one")), (two, fx.output("two"))] {
                    let f = info.files[0]
                    let st = try statOf(out + "/" + f.relativePath)
                    #expect(UInt32(st.st_mode) & 0o777 == f.mode, "mode of \(f.relativePath)")
                    #expect(mtimeNanos(st) == f.mtimeNanos, "mtime of \(f.relativePath)")
                    #expect(try readFile(out + "/" + f.relativePath) == bytes)
                }
                // ...and restoring touched neither source.
                let a = try statOf(fx.base + "/x/a.bin"), b = try statOf(fx.base + "/y/b.bin")
                #expect(a.st_mode & 0o777 == 0o444 && mtimeNanos(a) == fixedMtime, "x/a.bin was changed by a restore")
                #expect(b.st_mode & 0o777 == 0o440 && mtimeNanos(b) == laterMtime, "y/b.bin was changed by a restore")
            }
        }
    }

    @Test("a read-only file whose store link is gone is restored from its content")
    func missingLinkFallsBackToContent() async throws {
        try await withFixture { fx in
            try writeSparseFile(fx.base + "/ro.bin", size: 4 << 20, data: [(1 << 20, patternBytes(5000, seed: 8))], mode: 0o444)
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "nolink", version: "1", baseDir: fx.base,
                                                                    files: [FileRequest("ro.bin", readOnly: true)])).info
                let link = fx.linkDir + "/" + info.files[0].digest.hex
                try posix("unlink") { unlink(link) }
                #expect(try await store.verify().problems.map(\.kind).contains(.missingLink))
                let out = fx.output()
                let r = try await store.restore(RestoreRequest(name: "nolink", version: "1", outputDir: out))
                #expect(r.filesDecoded == 1 && r.filesLinked == 0)
                try expectComplete(info.files[0], at: out + "/ro.bin")
                #expect(try dataExtents(out + "/ro.bin") == dataExtents(fx.base + "/ro.bin"))
                #expect(try statOf(out + "/ro.bin").st_ino != statOf(fx.base + "/ro.bin").st_ino)
            }
        }
    }
}
