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

/// Sources that change while a snapshot reads them (issue 12, items 7 and
/// 8): what is stored under a digest is always the bytes that hash to it.
/// SnapshotHooks make each change happen at one exact point.
@Suite("Snapshot source changes")
struct SnapshotSourceChangeTests {
    static let original = "original bytes, read and hashed\n"
    static let replacement = "REPLACEMENT bytes, never hashed\n"

    /// Runs `body` with `hook` installed on the store.
    static func withHook<T>(_ store: Snapshotter, _ hook: @escaping SnapshotHooks.Hook,
                            _ body: () async throws -> T) async throws -> T {
        SnapshotHooks.install(root: store.root, hook)
        defer { SnapshotHooks.remove(root: store.root) }
        return try await body()
    }

    /// The read-only file's store link holds the original bytes and restore
    /// hands them out.
    static func expectOriginalStored(_ info: SnapshotInfo, _ fx: Fixture, _ store: Snapshotter,
                                     sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let f = try #require(info.files.first, sourceLocation: sourceLocation)
        let link = fx.linkDir + "/" + f.digest.hex
        #expect(try readText(link) == original, "the store's link has the hashed bytes", sourceLocation: sourceLocation)
        #expect(try spf1Digest(link) == f.digest, sourceLocation: sourceLocation)
        _ = try await store.restore(RestoreRequest(name: info.name, version: info.version, outputDir: fx.output()))
        #expect(try readText(fx.output() + "/" + f.relativePath) == original, sourceLocation: sourceLocation)
        try expectRestored(info, in: fx.output(), store: fx)
    }

    @Test("a read-only source renamed away and replaced (same size and mtime) after it was read: the store links the inode that was read")
    func replacedByRenameAfterRead() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/model.bin", Self.original)
            try writeFile(fx.dir + "/replacement", Self.replacement)
            let originalInode = try statOf(fx.base + "/model.bin").st_ino
            try await withStore(fx) { store in
                let base = fx.base, dir = fx.dir
                let info = try await Self.withHook(store, { point in
                    guard case .read(relativePath: "model.bin", attempt: 1) = point else { return }
                    // The inode that was read lives on under another name.
                    rename(base + "/model.bin", dir + "/moved")
                    rename(dir + "/replacement", base + "/model.bin")
                }) {
                    try await store.snapshot(SnapshotRequest(name: "m", version: "v1", baseDir: fx.base,
                                                             files: [FileRequest("model.bin", readOnly: true)])).info
                }
                #expect(try readText(fx.base + "/model.bin") == Self.replacement, "the hook ran")
                let f = try #require(info.files.first)
                #expect(f.digest == (try spf1Digest(fx.dir + "/moved")))
                #expect(try statOf(fx.linkDir + "/" + f.digest.hex).st_ino == originalInode, "the link is the inode that was read")
                try await Self.expectOriginalStored(info, fx, store)
            }
        }
    }

    @Test("a read-only source unlinked and replaced after it was read: the link is a copy of the descriptor's bytes")
    func unlinkedAfterRead() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/model.bin", Self.original)
            try await withStore(fx) { store in
                let base = fx.base
                let info = try await Self.withHook(store, { point in
                    guard case .read(relativePath: "model.bin", attempt: 1) = point else { return }
                    // No name is left for the inode that was read: linkat
                    // of /proc/self/fd fails, as it does without /proc.
                    unlink(base + "/model.bin")
                    try? writeFile(base + "/model.bin", Self.replacement)
                }) {
                    try await store.snapshot(SnapshotRequest(name: "m", version: "v1", baseDir: fx.base,
                                                             files: [FileRequest("model.bin", readOnly: true)])).info
                }
                #expect(try readText(fx.base + "/model.bin") == Self.replacement, "the hook ran")
                let f = try #require(info.files.first)
                #expect(try statOf(fx.linkDir + "/" + f.digest.hex).st_ino != statOf(fx.base + "/model.bin").st_ino)
                try await Self.expectOriginalStored(info, fx, store)
            }
        }
    }

    /// Appends `text` to `path` (size, mtime and ctime change).
    static func append(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// weights.bin (read-only) under a fixture's base, a store, and a
    /// snapshot of it as a given version.
    static func withWeights(_ body: (Fixture, String, Snapshotter, (String) async throws -> SnapshotReport) async throws -> Void)
        async throws {
        try await withFixture { fx in
            let path = fx.base + "/weights.bin"
            try writeFile(path, Self.original)
            try await withStore(fx) { store in
                try await body(fx, path, store) { v in
                    try await store.snapshot(SnapshotRequest(name: "c", version: v, baseDir: fx.base,
                                                             files: [FileRequest("weights.bin", readOnly: true)]))
                }
            }
        }
    }

    static func ctime(_ path: String) throws -> Int64 {
        let st = try statOf(path)
        return Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
    }

    @Test("a file written while it is read is read again and stored as it ended up, never torn", arguments: [false, true])
    func writtenDuringRead(_ readOnly: Bool) async throws {
        try await withFixture { fx in
            let path = fx.base + "/log.txt"
            try writeFile(path, Self.original)
            try await withStore(fx) { store in
                let attempts = Collector<Int>()
                let info = try await Self.withHook(store, { point in
                    guard case .read(relativePath: "log.txt", let attempt) = point else { return }
                    attempts.append(attempt)
                    if attempt == 1 { Self.append(path, "a tail written during the read\n") }
                }) {
                    try await store.snapshot(SnapshotRequest(name: "w", version: "v1", baseDir: fx.base,
                                                             files: [FileRequest("log.txt", readOnly: readOnly)])).info
                }
                #expect(attempts.values == [1, 2], "read again once")
                let f = try #require(info.files.first)
                #expect(f.digest == (try spf1Digest(path)), "the stored digest is the final content's")
                #expect(f.size == Int64(try statOf(path).st_size))
                _ = try await store.restore(RestoreRequest(name: "w", version: "v1", outputDir: fx.output()))
                #expect(try readText(fx.output() + "/log.txt") == Self.original + "a tail written during the read\n")
                try expectRestored(info, in: fx.output(), store: fx)
                #expect(try fx.contentFiles() == [f.digest.hex], "the torn first read was not kept")
            }
        }
    }

    @Test("a same-size write with its mtime set back is seen by ctime and read again")
    func sameSizeWriteWithMtimeSetBack() async throws {
        try await withFixture { fx in
            let path = fx.base + "/data.bin"
            try writeFile(path, Self.original)
            let mtime = mtimeNanos(try statOf(path))
            try await withStore(fx) { store in
                let attempts = Collector<Int>()
                let info = try await Self.withHook(store, { point in
                    guard case .read(relativePath: "data.bin", let attempt) = point else { return }
                    attempts.append(attempt)
                    guard attempt == 1, let before = try? Self.ctime(path) else { return }
                    // Until the clock shows it: ctime has the kernel's
                    // timestamp granularity.
                    repeat {
                        try? writeFile(path, Self.replacement, mtimeNanos: mtime)
                    } while (try? Self.ctime(path)) == before
                }) {
                    try await store.snapshot(SnapshotRequest(name: "w", version: "v1", baseDir: fx.base,
                                                             files: [FileRequest("data.bin")])).info
                }
                #expect(attempts.values == [1, 2])
                let f = try #require(info.files.first)
                #expect(f.digest == (try spf1Digest(path)))
                #expect(f.mtimeNanos == mtime)
                _ = try await store.restore(RestoreRequest(name: "w", version: "v1", outputDir: fx.output()))
                #expect(try readText(fx.output() + "/data.bin") == Self.replacement)
            }
        }
    }

    @Test("a file that changes on every read fails with an error naming it, and nothing is recorded", arguments: [false, true])
    func keepsChanging(_ readOnly: Bool) async throws {
        try await withFixture { fx in
            let path = fx.base + "/busy.txt"
            try writeFile(fx.base + "/ok.txt", "ok\n")
            try writeFile(path, Self.original)
            try await withStore(fx) { store in
                let attempts = Collector<Int>()
                let e = await expectError(.busy) {
                    try await Self.withHook(store, { point in
                        guard case .read(relativePath: "busy.txt", let attempt) = point else { return }
                        attempts.append(attempt)
                        Self.append(path, "more\n")
                    }) {
                        try await store.snapshot(SnapshotRequest(name: "w", version: "v1", baseDir: fx.base,
                                                                 files: [FileRequest("ok.txt", readOnly: readOnly),
                                                                         FileRequest("busy.txt", readOnly: readOnly)]))
                    }
                }
                #expect(e?.message.contains("busy.txt") == true, "\(e?.message ?? "")")
                #expect(attempts.values == Array(1...Snapshotter.maxReadAttempts))
                let listed = try await store.list()
                #expect(listed.isEmpty)
                #expect(try fx.storageTemps() == [])
                let stored = try fx.contentFiles()
                #expect(!stored.contains(try spf1Digest(path).hex))
            }
        }
    }

    @Test("a known read-only file whose ctime changed (chmod and back: same mode, size and mtime) is read again, not trusted")
    func ctimeChangeDefeatsInodeFastPath() async throws {
        try await Self.withWeights { fx, path, store, snap in
            _ = try await snap("v1")
            #expect(try await snap("v2").filesKnownByInode == 1, "unchanged: known by inode")
            let before = try Self.ctime(path)
            repeat {
                _ = try posix("chmod") { chmod(path, 0o600) }
                _ = try posix("chmod") { chmod(path, 0o644) }
            } while try Self.ctime(path) == before
            let r = try await snap("v3")
            #expect(r.filesKnownByInode == 0 && r.bytesRead == Int64(Self.original.utf8.count), "read again")
            #expect(try await snap("v4").filesKnownByInode == 1, "known again once read")
        }
    }

    @Test("a known read-only file whose store link was removed, or replaced by another file, is read again, not trusted",
          arguments: [false, true])
    func lostLinkDefeatsInodeFastPath(replace: Bool) async throws {
        try await Self.withWeights { fx, path, store, snap in
            let d = try #require(try await snap("v1").info.files.first?.digest)
            #expect(try await snap("v2").filesKnownByInode == 1, "unchanged: known by inode")
            let before = try Self.ctime(path)
            let link = fx.linkDir + "/" + d.hex
            if replace {
                try writeFile(link + ".planted", Self.replacement)
                _ = try posix("rename") { rename(link + ".planted", link) }
            } else {
                _ = try posix("unlink") { unlink(link) }
            }
            // Taking a name from the inode is what changes its ctime.
            try #require(try Self.ctime(path) != before, "the source's ctime moved with its store link")
            let r = try await snap("v3")
            #expect(r.filesKnownByInode == 0 && r.bytesRead == Int64(Self.original.utf8.count), "read again")
            if !replace {
                #expect(try lstatOf(link).st_ino == statOf(path).st_ino, "the link is made again")
                #expect(try await snap("v4").filesKnownByInode == 1, "known again once linked")
            }
        }
    }

    @Test("an inode record from before ctime was kept decodes without it and is read once, then trusted")
    func oldInodeRecordReadOnce() async throws {
        try await Self.withWeights { fx, path, store, snap in
            let f = try #require(try await snap("v1").info.files.first)
            let st = try statOf(path)
            // The 24-byte form older stores wrote: digest, size, mtime.
            var w = ByteWriter()
            w.u64(f.digest.value)
            w.i64(f.size)
            w.i64(f.mtimeNanos)
            let old = w.bytes
            let decoded = try old.withUnsafeBytes { try InodeRecord.decode($0) }
            #expect(decoded == InodeRecord(digest: f.digest, size: f.size, mtimeNanos: f.mtimeNanos, ctimeNanos: nil))
            // A record without ctime encodes as the old 24 bytes.
            #expect(decoded.encode() == old)
            try store.meta.write { txn in
                try txn.putInode(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino), decoded)
            }
            #expect(try await snap("v2").filesKnownByInode == 0)
            #expect(try await snap("v3").filesKnownByInode == 1)
        }
    }
}
