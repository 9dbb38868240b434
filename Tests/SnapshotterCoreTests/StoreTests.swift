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

/// Content is stored once and lives exactly as long as a snapshot uses it;
/// names are unique; unchanged read-only files are recognised by inode.
@Suite("Content store")
struct StoreTests {
    @Test("identical content in two snapshots is stored once, and delete keeps what another snapshot uses")
    func sharedContentStoredOnceAndKeptUntilLastUser() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/one/weights.bin", patternBytes(200_000, seed: 1))
            try writeFile(fx.base + "/two/weights-copy.bin", patternBytes(200_000, seed: 1))
            try writeFile(fx.base + "/frozen.bin", patternBytes(50_000, seed: 2), mode: 0o444)
            try writeFile(fx.base + "/two/new.txt", "only in two\n")
            try await withStore(fx) { store in
                let first = try await store.snapshot(SnapshotRequest(name: "share", version: "1", baseDir: fx.base, files: [
                    FileRequest("one/weights.bin"), FileRequest("frozen.bin", readOnly: true),
                ]))
                #expect(first.filesStored == 2)
                let second = try await store.snapshot(SnapshotRequest(name: "share", version: "2", baseDir: fx.base, files: [
                    FileRequest("two/weights-copy.bin"), FileRequest("frozen.bin", readOnly: true), FileRequest("two/new.txt"),
                ]))
                #expect(second.filesStored == 1, "only new.txt is new content")
                #expect(try fx.contentFiles().count == 3)
                #expect(try fx.linkFiles().count == 1)
                #expect(try await store.verify().problems == [])

                let gone = try await store.delete(name: "share", version: "1")
                #expect(gone.contentFilesRemoved == 0)
                #expect(try fx.contentFiles().count == 3)
                #expect(try fx.linkFiles().count == 1)
                #expect(try await store.verify().problems == [])
                #expect(try await store.list().map(\.version) == ["2"])
                await expectError(.notFound) { try await store.info(name: "share", version: "1") }
                let out = fx.output()
                _ = try await store.restore(RestoreRequest(name: "share", version: "2", outputDir: out))
                try expectRestored(try await store.info(name: "share", version: "2"), in: out, store: fx)

                let last = try await store.delete(name: "share", version: "2")
                #expect(last.contentFilesRemoved == 3)
                #expect(last.bytesFreed > 250_000)
                #expect(try fx.contentFiles() == [])
                #expect(try fx.linkFiles() == [])
                #expect(try statOf(fx.base + "/frozen.bin").st_nlink == 2, "the source keeps its restored twin, not the store link")
                let report = try await store.verify()
                #expect(report.problems == [])
                #expect(report.snapshotsChecked == 0 && report.contentFilesChecked == 0)
                #expect(try await store.list() == [])
                await expectError(.notFound) { try await store.delete(name: "share", version: "2") }
                await expectError(.notFound) {
                    try await store.restore(RestoreRequest(name: "share", version: "2", outputDir: fx.output("again")))
                }
            }
        }
    }

    @Test("a deleted snapshot's content can be stored again by a later snapshot")
    func contentComesBackAfterDelete() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/a.bin", patternBytes(10_000, seed: 3))
            try writeFile(fx.base + "/r.bin", patternBytes(10_000, seed: 4), mode: 0o444)
            let files = [FileRequest("a.bin"), FileRequest("r.bin", readOnly: true)]
            try await withStore(fx) { store in
                _ = try await store.snapshot(SnapshotRequest(name: "again", version: "1", baseDir: fx.base, files: files))
                try await store.delete(name: "again", version: "1")
                let report = try await store.snapshot(SnapshotRequest(name: "again", version: "1", baseDir: fx.base, files: files))
                #expect(report.filesStored == 2)
                #expect(report.filesKnownByInode == 0, "the inode record went with the content")
                #expect(try await store.verify().problems == [])
                _ = try await store.restore(RestoreRequest(name: "again", version: "1", outputDir: fx.output()))
                try expectRestored(report.info, in: fx.output(), store: fx)
            }
        }
    }

    @Test("an existing name:version is refused with .alreadyExists and left as it was")
    func existingVersionRefused() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/f.txt", "first\n")
            try await withStore(fx) { store in
                let first = try await store.snapshot(SnapshotRequest(name: "dup", version: "v1", baseDir: fx.base, files: [FileRequest("f.txt")]))
                try writeFile(fx.base + "/f.txt", "second\n")
                try writeFile(fx.base + "/g.txt", "more\n")
                await expectError(.alreadyExists) {
                    try await store.snapshot(SnapshotRequest(name: "dup", version: "v1", baseDir: fx.base,
                                                             files: [FileRequest("f.txt"), FileRequest("g.txt")]))
                }
                let info = try await store.info(name: "dup", version: "v1")
                #expect(info.files == first.info.files)
                #expect(info.config == first.info.config)
                #expect(try fx.contentFiles().count == 1, "the refused snapshot stored nothing")
                // Another version of the same name is fine.
                _ = try await store.snapshot(SnapshotRequest(name: "dup", version: "v2", baseDir: fx.base, files: [FileRequest("f.txt")]))
                #expect(try await store.list().map(\.version).sorted() == ["v1", "v2"])
            }
        }
    }

    @Test("re-snapshotting unchanged read-only files reads nothing: they are known by inode")
    func unchangedReadOnlyFilesKnownByInode() async throws {
        try await withFixture { fx in
            var files: [FileRequest] = []
            for i in 0..<5 {
                try writeFile(fx.base + "/ro/\(i).bin", patternBytes(100_000 + i, seed: UInt64(i)), mode: 0o444)
                files.append(FileRequest("ro/\(i).bin", readOnly: true))
            }
            try await withStore(fx) { store in
                let first = try await store.snapshot(SnapshotRequest(name: "inode", version: "1", baseDir: fx.base, files: files))
                #expect(first.filesKnownByInode == 0)
                #expect(first.bytesRead > 0)
                let second = try await store.snapshot(SnapshotRequest(name: "inode", version: "2", baseDir: fx.base, files: files))
                #expect(second.filesKnownByInode == files.count)
                #expect(second.bytesRead == 0)
                #expect(second.filesStored == 0)
                #expect(second.info.files.map(\.digest) == first.info.files.map(\.digest))

                // A read-only file whose mtime changed is read again.
                try setMtime(fx.base + "/ro/0.bin", fixedMtime + 1)
                let third = try await store.snapshot(SnapshotRequest(name: "inode", version: "3", baseDir: fx.base, files: files))
                #expect(third.filesKnownByInode == files.count - 1)
                #expect(third.bytesRead == 100_000)
                // Read-write files are always read.
                let fourth = try await store.snapshot(SnapshotRequest(name: "inode", version: "4", baseDir: fx.base,
                                                                      files: files.map { FileRequest($0.relativePath) }))
                #expect(fourth.filesKnownByInode == 0)
                #expect(try await store.verify().problems == [])
            }
        }
    }
}
