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

/// A tmpfs of `size` (mount(8) syntax, "4m") on a fresh directory for the
/// length of `body`. Needs root; the test is skipped, saying so, without.
func withTinyFilesystem<T>(size: String, _ body: (String) async throws -> T) async throws -> T {
    guard geteuid() == 0 else { try Test.cancel("mounting a small tmpfs needs root") }
    return try await withTempDir { dir in
        let mnt = dir + "/mnt"
        try makeDirs(mnt)
        guard mount("tmpfs", mnt, "tmpfs", 0, "size=\(size),mode=0755") == 0 else {
            try Test.cancel("cannot mount a tmpfs on \(mnt): \(String(cString: strerror(errno)))")
        }
        defer { umount2(mnt, Int32(MNT_DETACH)) }
        return try await body(mnt)
    }
}

/// Fills the filesystem of `dir` with `dir/filler` until `free` bytes are
/// left (0: until it is full).
func fill(_ dir: String, leaving free: Int) throws {
    var vfs = statvfs()
    try posix("statvfs \(dir)") { statvfs(dir, &vfs) }
    let available = Int(vfs.f_bavail) * Int(vfs.f_frsize)
    let path = dir + "/filler"
    let fd = try posix("open \(path)") { open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600) }
    defer { close(fd) }
    let chunk = [UInt8](repeating: 0x5A, count: 64 << 10)
    var left = free == 0 ? Int.max : max(0, available - free)
    while left > 0 {
        let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress!, min(chunk.count, left)) }
        if n < 0 && errno == ENOSPC { break }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw TestError.posix("write \(path)", errno) }
        left -= n
    }
}

func unfill(_ dir: String) throws { try posix("unlink filler") { unlink(dir + "/filler") } }

private func options(_ change: (inout StoreOptions) -> Void = { _ in }) -> StoreOptions {
    var o = StoreOptions()
    o.gc.intervalSeconds = 0
    change(&o)
    return o
}

/// Problems other than orphan content (which a failed snapshot may leave
/// for the collector, see FaultInjectionTests).
private func problems(_ store: Snapshotter) async throws -> [VerifyProblem] {
    try await store.verify().problems.filter { $0.kind != .orphanContent }
}

@Suite("Full disk", .serialized)
struct FullDiskTests {
    @Test("snapshot into a full store fails with no-space, leaves no temporary file, and works once space is freed")
    func snapshotFullStore() async throws {
        try await withTinyFilesystem(size: "8m") { mnt in
            try await withFixture { src in
                try writeFile(src.base + "/big.bin", patternBytes(3 << 20, seed: 21))
                try writeFile(src.base + "/small.txt", "small\n")
                let fx = Fixture(dir: mnt)
                let req = SnapshotRequest(name: "full", version: "1", baseDir: src.base,
                                          files: [FileRequest("big.bin"), FileRequest("small.txt")])
                try await withStore(fx) { store in
                    try fill(mnt, leaving: 1 << 20)
                    let e = await expectError(.noSpace) { try await store.snapshot(req) }
                    // Either file may be the one that finds the disk full.
                    let message = e?.message ?? ""
                    #expect(message.contains(fx.contentDir) && (message.contains("big.bin") || message.contains("small.txt")), "\(message)")
                    #expect(try fx.storageTemps() == [])
                    #expect(try await store.list().isEmpty)
                    #expect(try await problems(store) == [])

                    try unfill(mnt)
                    let info = try await store.snapshot(req).info
                    #expect(try await store.verify().problems == [])
                    let out = src.output()
                    _ = try await store.restore(RestoreRequest(name: "full", version: "1", outputDir: out))
                    try expectRestored(info, in: out, store: fx)
                }
            }
        }
    }

    @Test("restore onto a full filesystem fails with no-space naming the output, and works once space is freed")
    func restoreFullOutput() async throws {
        try await withTinyFilesystem(size: "4m") { mnt in
            try await withFixture { fx in
                try writeFile(fx.base + "/big.bin", patternBytes(2 << 20, seed: 22))
                try writeFile(fx.base + "/small.txt", "small\n")
                try await withStore(fx) { store in
                    let info = try await store.snapshot(SnapshotRequest(name: "full", version: "1", baseDir: fx.base,
                                                                        files: [FileRequest("big.bin"), FileRequest("small.txt")])).info
                    try fill(mnt, leaving: 1 << 20)
                    let out = mnt + "/out"
                    let e = await expectError(.noSpace) {
                        try await store.restore(RestoreRequest(name: "full", version: "1", outputDir: out))
                    }
                    #expect(e?.message.contains(out) == true, "\(e?.message ?? "")")
                    let left = try allFiles(under: out)
                    #expect(left.filter { isTempName(Paths.basename($0)) } == [])
                    #expect(left == [], "a failed restore removes what it placed")
                    #expect(try await store.verify().problems == [])

                    try unfill(mnt)
                    let again = mnt + "/again"
                    _ = try await store.restore(RestoreRequest(name: "full", version: "1", outputDir: again))
                    try expectRestored(info, in: again, store: fx)
                }
            }
        }
    }

    @Test("a download into a full store fails with no-space, leaves nothing, and works once space is freed")
    func downloadIntoFullStore() async throws {
        try await withTinyFilesystem(size: "8m") { mnt in
            try await withFixture { fx in
                try writeFile(fx.base + "/big.bin", patternBytes(3 << 20, seed: 23))
                try writeFile(fx.base + "/small.txt", "small\n")
                let remote = options {
                    $0.registry = RegistrySettings(endpoint: "file://\(fx.dir)/registry")
                    $0.content = ContentSettings(url: "file://\(fx.dir)/content")
                }
                let a = try Snapshotter(root: fx.root, options: remote)
                let info = try await a.snapshot(SnapshotRequest(name: "full", version: "1", baseDir: fx.base,
                                                                files: [FileRequest("big.bin"), FileRequest("small.txt")])).info
                await a.close()
                let bfx = Fixture(dir: mnt)
                let b = try Snapshotter(root: bfx.root, options: remote)
                try fill(mnt, leaving: 1 << 20)
                let out = fx.output()
                let e = await expectError(.noSpace) {
                    try await b.restore(RestoreRequest(name: "full", version: "1", outputDir: out))
                }
                #expect(e?.message.contains(bfx.contentDir) == true, "\(e?.message ?? "")")
                #expect(try bfx.storageTemps() == [])
                #expect(try allFiles(under: out) == [])
                #expect(try await b.list().isEmpty)
                #expect(try await problems(b) == [])

                try unfill(mnt)
                _ = try await b.restore(RestoreRequest(name: "full", version: "1", outputDir: out))
                try expectComplete(info.files[0], at: out + "/" + info.files[0].relativePath)
                try expectComplete(info.files[1], at: out + "/" + info.files[1].relativePath)
                #expect(try await b.verify().problems == [])
                await b.close()
            }
        }
    }

    @Test("a metadata commit on a full filesystem fails with no-space naming the metadata, and works once space is freed")
    func metadataCommitOnFullDisk() async throws {
        try await withTinyFilesystem(size: "8m") { mnt in
            let fx = Fixture(dir: mnt)
            // Read-only sources on the store's filesystem: the second
            // snapshot knows them by inode and writes only metadata.
            var files: [FileRequest] = []
            for i in 0..<300 {
                let rel = "ro/\(String(repeating: "m", count: 40))-\(i).bin"
                try writeFile(fx.base + "/" + rel, "read-only \(i)\n", mode: 0o444)
                files.append(FileRequest(rel, readOnly: true))
            }
            try await withStore(fx) { store in
                _ = try await store.snapshot(SnapshotRequest(name: "meta", version: "1", baseDir: fx.base, files: files))
                let req = SnapshotRequest(name: "meta", version: "2", baseDir: fx.base, files: files)
                try fill(mnt, leaving: 0)
                let e = await expectError(.noSpace) { try await store.snapshot(req) }
                #expect(e?.message.contains(fx.root + "/metadata") == true, "\(e?.message ?? "")")
                #expect(try fx.storageTemps() == [])
                #expect(try await store.list().map(\.version) == ["1"])

                try unfill(mnt)
                let r = try await store.snapshot(req)
                #expect(r.filesKnownByInode == files.count, "only metadata was written")
                #expect(try await store.verify().problems == [])
            }
        }
    }
}

/// A metadata map (LMDB) too small for what is put in it: the snapshot that
/// would fill it is refused with a clear error, and delete and gc still
/// work, thanks to the pages kept in reserve.
@Suite("Metadata map full")
struct MetadataMapFullTests {
    @Test("snapshots until the map is full: no-space naming the map and the option; delete and gc still work; then snapshots work again")
    func mapFull() async throws {
        try await withFixture { fx in
            // Long paths make big records; read-only files on the store's
            // filesystem are known by inode after the first snapshot.
            var files: [FileRequest] = []
            for i in 0..<100 {
                let rel = "d/\(String(repeating: "p", count: 180))-\(i)"
                try writeFile(fx.base + "/" + rel, "file \(i)\n", mode: 0o444)
                files.append(FileRequest(rel, readOnly: true))
            }
            let store = try Snapshotter(root: fx.root, options: options { $0.metadataMapSize = 1 << 20 })
            var made = 0
            var failure: SnapshotterError?
            for v in 1...200 {
                do {
                    _ = try await store.snapshot(SnapshotRequest(name: "map", version: "\(v)", baseDir: fx.base, files: files))
                    made += 1
                } catch let e as SnapshotterError {
                    failure = e
                    break
                }
            }
            let e = try #require(failure, "the map never filled")
            #expect(made >= 2)
            // Then fill what is left with one-file snapshots, so the map is
            // as full as it gets.
            var small = 0
            for v in 1...2000 {
                do {
                    _ = try await store.snapshot(SnapshotRequest(name: "small", version: "\(v)", baseDir: fx.base, files: [files[v % files.count]]))
                    small += 1
                } catch let e as SnapshotterError where e.code == .noSpace {
                    break
                }
            }
            #expect(e.code == .noSpace, "\(e.code): \(e.message)")
            #expect(e.message.contains("metadata map") && e.message.contains("metadataMapSize")
                    && e.message.contains("SNAPSHOTTER_OPT_METADATA_MAP_SIZE"), "\(e.message)")
            #expect(try fx.storageTemps() == [])
            #expect(try await store.list().count == made + small)

            // Reads, a restore (which writes a lease) and verify still work.
            let out = fx.output()
            _ = try await store.restore(RestoreRequest(name: "map", version: "1", outputDir: out))
            #expect(try await store.verify().problems == [])
            // Delete one, then let the collector evict the rest in batches.
            try await store.delete(name: "map", version: "1")
            var policy = GCPolicy()
            policy.maxStoreBytes = 1
            policy.minRetentionSeconds = 0
            let gc = try await store.gc(policy: policy)
            #expect(gc.snapshotsEvicted == made - 1 + small)
            #expect(try await store.list().isEmpty)
            // Space is back: snapshots work again.
            _ = try await store.snapshot(SnapshotRequest(name: "map", version: "again", baseDir: fx.base, files: files))
            #expect(try await store.verify().problems == [])
            await store.close()
        }
    }
}
