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

/// Snapshot then restore gives back every file exactly: bytes, holes, mode
/// and mtime; read-only files come back as hard links to the store.
@Suite("Round trips")
struct RoundTripTests {
    /// Checks a restored file against its source: bytes (over the data
    /// extents, which must be identical, so holes stay holes), mode, mtime.
    static func expectSame(_ source: String, _ restored: String, readOnly: Bool, fx: Fixture,
                           sourceLocation: SourceLocation = #_sourceLocation) throws {
        let s = try statOf(source), r = try lstatOf(restored)
        #expect((r.st_mode & S_IFMT) == S_IFREG, sourceLocation: sourceLocation)
        #expect(r.st_size == s.st_size, "size of \(restored)", sourceLocation: sourceLocation)
        #expect(r.st_mode & 0o777 == s.st_mode & 0o777, "mode of \(restored)", sourceLocation: sourceLocation)
        #expect(mtimeNanos(r) == mtimeNanos(s), "mtime of \(restored)", sourceLocation: sourceLocation)
        let sourceExtents = try dataExtents(source)
        #expect(try dataExtents(restored) == sourceExtents, "holes of \(restored)", sourceLocation: sourceLocation)
        #expect(try sameBytes(source, restored, in: sourceExtents), "bytes of \(restored)", sourceLocation: sourceLocation)
        if readOnly {
            #expect(r.st_ino == s.st_ino && r.st_dev == s.st_dev,
                    "read-only \(restored) is not the source's inode", sourceLocation: sourceLocation)
            #expect(r.st_nlink >= 3, "source, store link and restored file share the inode", sourceLocation: sourceLocation)
        }
    }

    @Test("empty, small, sparse and all-hole files restore exactly", arguments: [false, true])
    func smallAndSparseFilesRoundTrip(readOnly: Bool) async throws {
        try await withFixture { fx in
            let files: [(String, mode_t)] = [("empty", 0o644), ("small.txt", 0o600), ("dir/sparse.bin", 0o755),
                                             ("dir/sub/holes.bin", 0o640), ("tail.bin", 0o444), ("ünï cödé/\"odd\"\tname<&>", 0o604)]
            try writeFile(fx.base + "/empty", [], mode: 0o644)
            try writeFile(fx.base + "/small.txt", "hello world\n", mode: 0o600, mtimeNanos: 1_234_567_890_000_000_001)
            try writeSparseFile(fx.base + "/dir/sparse.bin", size: 3 << 20, data: [
                (0, patternBytes(5000, seed: 1)),
                (1 << 20, patternBytes(4096, seed: 2)),
                (2 << 20 + 4096 * 3, patternBytes(70_000, seed: 3)),
            ], mode: 0o755, mtimeNanos: 1_600_000_000_999_999_999)
            try writeSparseFile(fx.base + "/dir/sub/holes.bin", size: 65536, data: [], mode: 0o640)
            try writeFile(fx.base + "/ünï cödé/\"odd\"\tname<&>", "unicode and escapes\n", mode: 0o604)
            // Data that ends in a partial block at the end of the file.
            try writeSparseFile(fx.base + "/tail.bin", size: (1 << 20) + 100, data: [((1 << 20) + 10, patternBytes(90, seed: 4))],
                                mode: 0o444)

            if geteuid() == 0 {
                // Owners are restored too when running as root.
                try posix("chown") { chown(fx.base + "/small.txt", 1234, 5678) }
                try posix("chown") { chown(fx.base + "/dir/sparse.bin", 4321, 0) }
            }

            try await withStore(fx) { store in
                let report = try await store.snapshot(SnapshotRequest(
                    name: "round", version: "v1", baseDir: fx.base,
                    files: files.map { FileRequest($0.0, readOnly: readOnly) }))
                #expect(report.info.fileCount == files.count)
                #expect(report.filesStored == files.count)
                for f in report.info.files {
                    let st = try statOf(fx.base + "/" + f.relativePath)
                    #expect(f.size == Int64(st.st_size))
                    #expect(f.mode == UInt32(st.st_mode & 0o777))
                    #expect(f.mtimeNanos == mtimeNanos(st))
                    #expect(f.uid == st.st_uid && f.gid == st.st_gid)
                    #expect(f.readOnly == readOnly)
                    #expect(try f.digest == spf1Digest(fx.base + "/" + f.relativePath))
                }

                let out = fx.output()
                let r = try await store.restore(RestoreRequest(name: "round", version: "v1", outputDir: out))
                #expect(r.filesLinked == (readOnly ? files.count : 0))
                #expect(r.filesDecoded == (readOnly ? 0 : files.count))
                #expect(r.filesCopied == 0)
                for (path, _) in files {
                    try Self.expectSame(fx.base + "/" + path, out + "/" + path, readOnly: readOnly, fx: fx)
                }
                try expectRestored(report.info, in: out, store: fx)
                let holes = try statOf(out + "/dir/sub/holes.bin")
                #expect(holes.st_blocks == 0, "an all-hole file is restored without data blocks")
                #expect(try allFiles(under: out) == files.map(\.0).sorted(), "nothing else is left in the output")
                #expect(try await store.verify().problems == [])
            }
        }
    }

    @Test("a 1 GiB sparse file restores with its holes, cheaply")
    func largeSparseFileRoundTrips() async throws {
        try await withFixture { fx in
            let size: Int64 = (1 << 30) + 12345
            let src = fx.base + "/big.sparse"
            try writeSparseFile(src, size: size, data: [
                (0, patternBytes(8192, seed: 10)),
                (300 << 20, patternBytes(4096, seed: 11)),
                (777 << 20 + 123, patternBytes(10_000, seed: 12)),
                (size - 100, patternBytes(100, seed: 13)),
            ], mode: 0o600)
            let sourceExtents = try dataExtents(src)
            #expect(sourceExtents.count == 4, "the filesystem reports the holes of the source")

            try await withStore(fx) { store in
                let report = try await store.snapshot(SnapshotRequest(name: "big", version: "1", baseDir: fx.base,
                                                                      files: [FileRequest("big.sparse")]))
                #expect(report.info.totalSize == size)
                let dataBytes = sourceExtents.reduce(0) { $0 + $1.length }
                let content = try statOf(fx.contentDir + "/" + report.info.files[0].digest.hex)
                #expect(Int64(content.st_size) == 20 + Int64(sourceExtents.count) * 16 + dataBytes,
                        "the content file holds only the extents")

                let out = fx.output()
                _ = try await store.restore(RestoreRequest(name: "big", version: "1", outputDir: out))
                try Self.expectSame(src, out + "/big.sparse", readOnly: false, fx: fx)
                let restored = try statOf(out + "/big.sparse")
                #expect(Int64(restored.st_blocks) * 512 < 1 << 20, "the restored file is sparse (\(restored.st_blocks) blocks)")
            }
        }
    }

    @Test("10,000 small files in nested directories round-trip")
    func tenThousandSmallFilesRoundTrip() async throws {
        try await withFixture { fx in
            var requests: [FileRequest] = []
            var contents = Set<String>()
            requests.reserveCapacity(10_000)
            for i in 0..<10_000 {
                let rel = String(format: "d%02d/e%d/f%04d.txt", i / 100, (i / 10) % 10, i)
                // Every tenth read-write file shares content with others;
                // every 7th file is read-only, with content of its own.
                let text = i % 10 == 0 && i % 7 != 0 ? "shared content \(i % 3)\n" : "file number \(i)\n"
                contents.insert(text)
                try writeFile(fx.base + "/" + rel, text, mode: i % 2 == 0 ? 0o644 : 0o600,
                              mtimeNanos: fixedMtime + Int64(i) * 1_000_001)
                requests.append(FileRequest(rel, readOnly: i % 7 == 0))
            }
            try await withStore(fx) { store in
                let report = try await store.snapshot(SnapshotRequest(name: "many", version: "v1", baseDir: fx.base, files: requests))
                #expect(report.info.fileCount == 10_000)
                #expect(contents.count == 9_146)
                #expect(try fx.contentFiles().count == contents.count, "identical files are stored once")
                #expect(report.filesStored == contents.count)

                let out = fx.output()
                let r = try await store.restore(RestoreRequest(name: "many", version: "v1", outputDir: out))
                #expect(r.filesLinked + r.filesDecoded == 10_000)
                #expect(r.filesDecoded == requests.filter { !$0.readOnly }.count)
                let digests = Dictionary(uniqueKeysWithValues: report.info.files.map { ($0.relativePath, $0.digest) })
                for req in requests {
                    let s = try statOf(fx.base + "/" + req.relativePath), d = try lstatOf(out + "/" + req.relativePath)
                    #expect(try readFile(out + "/" + req.relativePath) == readFile(fx.base + "/" + req.relativePath))
                    #expect(d.st_mode & 0o777 == s.st_mode & 0o777)
                    #expect(mtimeNanos(d) == mtimeNanos(s))
                    if req.readOnly, let digest = digests[req.relativePath] {
                        let link = try statOf(fx.linkDir + "/" + digest.hex)
                        #expect(d.st_ino == s.st_ino && d.st_ino == link.st_ino)
                    }
                }
                #expect(try allFiles(under: out).count == 10_000)
            }
        }
    }
}
