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

/// Read-only files cannot be hard-linked across filesystems: the store keeps
/// a copy, and restore copies instead of linking (and says so). Uses the
/// tmpfs at /dev/shm as the other filesystem.
@Suite("Across filesystems")
struct CrossDeviceTests {
    static let other = "/dev/shm"

    /// Runs `body` with a directory on another filesystem than /tmp, or
    /// cancels the test when there is none.
    static func withOtherFilesystem<T>(_ body: (String) async throws -> T) async throws -> T {
        guard let shm = try? statOf(other), let tmp = try? statOf("/tmp"), shm.st_dev != tmp.st_dev else {
            try Test.cancel("\(other) is missing or on the same filesystem as /tmp")
        }
        return try await withTempDir(in: other, body)
    }

    @Test("restore onto another filesystem copies read-only files, keeping holes, and reports them as copied")
    func restoreAcrossFilesystemsCopies() async throws {
        try await Self.withOtherFilesystem { elsewhere in
            try await withFixture { fx in
                try writeSparseFile(fx.base + "/ro/sparse.bin", size: 16 << 20, data: [(8 << 20, patternBytes(8192, seed: 1))], mode: 0o444)
                try writeFile(fx.base + "/ro/small.txt", "read-only\n", mode: 0o440)
                try writeFile(fx.base + "/rw.txt", "read-write\n")
                try await withStore(fx) { store in
                    let info = try await store.snapshot(SnapshotRequest(name: "xdev", version: "1", baseDir: fx.base, files: [
                        FileRequest("ro/sparse.bin", readOnly: true), FileRequest("ro/small.txt", readOnly: true), FileRequest("rw.txt"),
                    ])).info
                    let events = Collector<ProgressEvent>()
                    let out = elsewhere + "/out"
                    let r = try await store.restore(RestoreRequest(name: "xdev", version: "1", outputDir: out)) { e in
                        events.append(e)
                        return true
                    }
                    #expect(r.filesCopied == 2)
                    #expect(r.filesLinked == 0)
                    #expect(r.filesDecoded == 1)
                    #expect(events.values.last?.filesCopied == 2, "progress says how many files were copied")
                    for f in info.files {
                        try expectComplete(f, at: out + "/" + f.relativePath)
                        #expect(try statOf(out + "/" + f.relativePath).st_nlink == 1)
                    }
                    #expect(try dataExtents(out + "/ro/sparse.bin") == dataExtents(fx.base + "/ro/sparse.bin"))
                    #expect(try allFiles(under: out) == ["ro/small.txt", "ro/sparse.bin", "rw.txt"])
                }
            }
        }
    }

    @Test("read-only files from another filesystem are kept as a sparse copy in the store")
    func snapshotAcrossFilesystemsKeepsCopy() async throws {
        try await Self.withOtherFilesystem { elsewhere in
            try await withFixture { fx in
                let base = elsewhere + "/base"
                try writeSparseFile(base + "/model.bin", size: 16 << 20, data: [(4 << 20, patternBytes(100_000, seed: 2))], mode: 0o444)
                let files = [FileRequest("model.bin", readOnly: true)]
                try await withStore(fx) { store in
                    let info = try await store.snapshot(SnapshotRequest(name: "xdev", version: "1", baseDir: base, files: files)).info
                    let link = fx.linkDir + "/" + info.files[0].digest.hex
                    let source = try statOf(base + "/model.bin")
                    #expect(try statOf(link).st_dev != source.st_dev, "the store holds its own copy")
                    #expect(try sameBytes(link, base + "/model.bin"))
                    #expect(try dataExtents(link) == dataExtents(base + "/model.bin"), "the copy keeps the holes")
                    #expect(try await store.verify().problems == [])

                    // The copy is not the source: a second snapshot reads it again.
                    let again = try await store.snapshot(SnapshotRequest(name: "xdev", version: "2", baseDir: base, files: files))
                    #expect(again.filesKnownByInode == 0)
                    #expect(again.filesStored == 0)

                    let out = fx.output()
                    let r = try await store.restore(RestoreRequest(name: "xdev", version: "1", outputDir: out))
                    #expect(r.filesLinked == 1)
                    try expectRestored(info, in: out, store: fx)
                }
            }
        }
    }
}
