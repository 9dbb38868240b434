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

/// A local restore checks each read-only file's store link once, before
/// anything is written, and the export uses what that check found: a link
/// is used only when it is a regular file carrying the file's metadata;
/// anything else is decoded from content that must be there too.
@Suite("Restore link check")
struct RestoreLinkCheckTests {
    @Test("each store link is stat'ed once per restore: the export uses the prepare's check")
    func storeLinkStatedOnce() async throws {
        try await withFixture { fx in
            let n = 6
            for i in 0..<n { try writeFile(fx.base + "/d\(i % 2)/f\(i)", "file \(i)\n", mode: 0o444) }
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "once", version: "1", baseDir: fx.base, files:
                    (0..<n).map { FileRequest("d\($0 % 2)/f\($0)", readOnly: true) })).info
                // Any stat of a store link beyond one per file fails.
                try await withFaults([rule(.lstat, EIO, in: fx.linkDir, nth: n + 1, times: Int.max)]) { armed in
                    let r = try await store.restore(RestoreRequest(name: "once", version: "1", outputDir: fx.output()))
                    #expect(r.filesLinked == n)
                    #expect(armed.fired(0) == 0, "a store link was stat'ed more than once")
                }
                try expectRestored(info, in: fx.output(), store: fx)
            }
        }
    }

    @Test("a store link that cannot be stat'ed fails the restore before anything is written, naming the file")
    func unreadableLinkNamesTheFile() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/a/first", "read-write\n")
            try writeFile(fx.base + "/b/ro.bin", "read-only\n", mode: 0o444)
            try await withStore(fx) { store in
                _ = try await store.snapshot(SnapshotRequest(name: "eio", version: "1", baseDir: fx.base, files: [
                    FileRequest("a/first"), FileRequest("b/ro.bin", readOnly: true),
                ]))
                let out = fx.output()
                let e = await withFaults([rule(.lstat, EIO, in: fx.linkDir)]) { _ in
                    await expectError(.io) { try await store.restore(RestoreRequest(name: "eio", version: "1", outputDir: out)) }
                }
                #expect(e?.message.contains("b/ro.bin") == true, "the error names the file: \(e?.message ?? "")")
                #expect(!exists(out), "nothing was written")
            }
        }
    }

    @Test("a store link replaced by a symlink is never linked into the output: the file is decoded")
    func symlinkInStoreIsDecoded() async throws {
        try await withFixture { fx in
            // Mode 0777 and the recorded mtime: the symlink's own lstat
            // matches the file's metadata, only its type tells it apart.
            try writeFile(fx.base + "/ro.bin", patternBytes(3000, seed: 3), mode: 0o777)
            try writeFile(fx.dir + "/elsewhere", "not the snapshot's\n")
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "symlink", version: "1", baseDir: fx.base,
                                                                    files: [FileRequest("ro.bin", readOnly: true)])).info
                let link = fx.linkDir + "/" + info.files[0].digest.hex
                try posix("unlink") { unlink(link) }
                try posix("symlink") { symlink(fx.dir + "/elsewhere", link) }
                var times = [timespec(tv_sec: Int(fixedMtime / 1_000_000_000), tv_nsec: Int(fixedMtime % 1_000_000_000)),
                             timespec(tv_sec: Int(fixedMtime / 1_000_000_000), tv_nsec: Int(fixedMtime % 1_000_000_000))]
                try posix("utimensat") { utimensat(AT_FDCWD, link, &times, AT_SYMLINK_NOFOLLOW) }
                let out = fx.output()
                let r = try await store.restore(RestoreRequest(name: "symlink", version: "1", outputDir: out))
                #expect(r.filesDecoded == 1 && r.filesLinked == 0)
                try expectComplete(info.files[0], at: out + "/ro.bin")
            }
        }
    }

    @Test("a read-only file whose link no longer matches and whose content is gone fails before anything is written")
    func mismatchedLinkNeedsContent() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/a/first", "read-write\n")
            try writeFile(fx.base + "/b/ro.bin", patternBytes(2000, seed: 4), mode: 0o444)
            let out = fx.output()
            try writeFile(out + "/keep.txt", "mine\n")
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "gone", version: "1", baseDir: fx.base, files: [
                    FileRequest("a/first"), FileRequest("b/ro.bin", readOnly: true),
                ])).info
                let ro = try #require(info.files.first { $0.readOnly })
                // The link's inode (the source's) no longer carries the
                // recorded mode, so it is not used; the content is needed.
                try posix("chmod") { chmod(fx.linkDir + "/" + ro.digest.hex, 0o400) }
                try posix("unlink") { unlink(fx.contentDir + "/" + ro.digest.hex) }
                let e = await expectError(.corrupt) {
                    try await store.restore(RestoreRequest(name: "gone", version: "1", outputDir: out))
                }
                #expect(e?.message.contains("b/ro.bin") == true, "the error names the file: \(e?.message ?? "")")
                #expect(try allFiles(under: out) == ["keep.txt"], "refused before writing anything")
                #expect(try names(in: out) == ["keep.txt"], "no directory was left behind")
            }
        }
    }
}
