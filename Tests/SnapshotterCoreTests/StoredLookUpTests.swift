import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore

/// A batch stops looking for stored content when look-ups keep finding
/// none (a cold snapshot); content that is there all the same is found by
/// the barrier's rename, which keeps the stored file and drops the copy.
@Suite("Stored content look-ups", .serialized)
struct StoredLookUpTests {
    @Test("look-ups that find nothing become a sample; look-ups that find content stay")
    func policy() {
        var misses = StoredLookUps()
        var asked = 0
        for _ in 0..<(StoredLookUps.firstLookUps + 16 * StoredLookUps.sampleEvery) where misses.shouldLookUp() {
            asked += 1
            misses.note(found: false)
        }
        #expect(asked == StoredLookUps.firstLookUps + 16)

        var hits = StoredLookUps()
        for i in 0..<200 {
            let asks = hits.shouldLookUp()
            #expect(asks, "file \(i) not looked up")
            hits.note(found: i % StoredLookUps.worthwhileOneIn == 0)
        }
    }

    /// Ingests `bytes` from a file in `dir` through `batch`.
    static func ingest(_ store: ContentStore, _ batch: DurableBatch?, _ bytes: [UInt8], in dir: String,
                       _ name: String) throws -> ContentStore.Ingested {
        let path = dir + "/" + name
        try writeFile(path, bytes)
        let fd = try posix("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SPF1.chunkSize, alignment: 4096)
        defer { buffer.deallocate() }
        return try store.ingest(fd: fd, size: Int64(bytes.count), sourcePath: name, buffer: buffer, batch: batch) { _ in }
    }

    @Test("stored content not looked up is found by the barrier: reported lost, temporary removed, stored file kept")
    func notLookedUpIsLost() async throws {
        try await withFixture { fx in
            let store = try ContentStore(root: fx.root)
            let old = patternBytes(3000, seed: 42)
            let first = try Self.ingest(store, nil, old, in: fx.base, "old")
            #expect(first.created)
            let before = try lstatOf(fx.contentDir + "/" + first.digest.hex)

            let batch = try DurableBatch(store: store)
            for i in 0..<StoredLookUps.firstLookUps {
                #expect(try Self.ingest(store, batch, patternBytes(500 + i, seed: UInt64(i)), in: fx.base, "new\(i)").created)
            }
            // Look-ups found nothing so far: the next one is skipped.
            let again = try Self.ingest(store, batch, old, in: fx.base, "again")
            #expect(again.digest == first.digest)
            #expect(again.created, "looked up although look-ups found nothing")
            let lost = try batch.barrier()
            #expect(lost == [first.digest])
            #expect(try fx.storageTemps() == [])
            #expect(try fx.contentFiles().count == StoredLookUps.firstLookUps + 1)
            let after = try lstatOf(fx.contentDir + "/" + first.digest.hex)
            #expect(after.st_ino == before.st_ino, "the stored content file was replaced")
        }
    }

    @Test("a snapshot counts only new content when stored content was not looked up")
    func snapshotCountsNewContentOnly() async throws {
        try await withFixture { fx in
            let stored = 20
            let fresh = StoredLookUps.firstLookUps * 2
            try await withStore(fx) { store in
                let old = try (0..<stored).map { i -> FileRequest in
                    try writeFile(fx.base + "/old/f\(i)", patternBytes(200 + i, seed: 1000 + UInt64(i)))
                    return FileRequest("old/f\(i)", readOnly: false)
                }
                #expect(try await store.snapshot(SnapshotRequest(name: "s", version: "1", baseDir: fx.base, files: old)).filesStored == stored)
                // New files first (sorted), then copies of the stored content:
                // by then look-ups have found nothing and are sampled.
                var files = try (0..<fresh).map { i -> FileRequest in
                    try writeFile(fx.base + "/a/f\(i)", patternBytes(300 + i, seed: UInt64(i)), mode: i % 2 == 0 ? 0o444 : 0o644)
                    return FileRequest("a/f\(i)", readOnly: i % 2 == 0)
                }
                for i in 0..<stored {
                    try writeFile(fx.base + "/z/f\(i)", patternBytes(200 + i, seed: 1000 + UInt64(i)), mode: 0o444)
                    files.append(FileRequest("z/f\(i)", readOnly: true))
                }
                let r = try await store.snapshot(SnapshotRequest(name: "s", version: "2", baseDir: fx.base, files: files))
                #expect(r.filesStored == fresh)
                #expect(try fx.storageTemps() == [])
                #expect(try fx.contentFiles().count == stored + fresh)
                #expect(try await store.verify().problems == [])
                let out = fx.output()
                _ = try await store.restore(RestoreRequest(name: "s", version: "2", outputDir: out))
                try expectRestored(try await store.info(name: "s", version: "2"), in: out, store: fx, hashing: .readWrite)
            }
        }
    }
}
