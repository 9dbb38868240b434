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

/// A snapshot's small files are made durable by one barrier before its
/// commit, not by an fsync each (docs/design-notes.md, "Batched
/// durability"): the fsync count does not grow with the file count, a
/// failed barrier records nothing and leaves nothing under a final name.
@Suite("Batched durability", .serialized)
struct BatchedDurabilityTests {
    /// `count` small files, every third read-only.
    static func writeSmallFiles(_ fx: Fixture, _ count: Int, seed: UInt64) throws -> [FileRequest] {
        try (0..<count).map { i in
            let ro = i % 3 == 0
            let rel = "s\(seed)/d\(i % 7)/f\(i)"
            try writeFile(fx.base + "/" + rel, patternBytes(100 + i * 37, seed: seed + UInt64(i)), mode: ro ? 0o444 : 0o644)
            return FileRequest(rel, readOnly: ro)
        }
    }

    /// What the store fsynced (and syncfs'd) while `body` ran.
    static func syncs(in root: String, _ body: () async throws -> Void) async throws -> (fsyncs: [String], syncfs: [String]) {
        let real = try Sys.realpath(root)
        let seen = Collector<String>()
        let id = SyncProbe.watch { seen.append($0) }
        defer { SyncProbe.unwatch(id) }
        try await body()
        return (seen.values.filter { $0.hasPrefix(real + "/") }, seen.values.filter { $0.hasPrefix("syncfs " + real + "/") })
    }

    @Test("the fsyncs of a snapshot do not grow with its file count")
    func fsyncCountIsFlat() async throws {
        try await withFixture { fx in
            let few = try Self.writeSmallFiles(fx, 40, seed: 1)
            let many = try Self.writeSmallFiles(fx, 400, seed: 1000)
            try await withStore(fx) { store in
                let a = try await Self.syncs(in: fx.root) {
                    let r = try await store.snapshot(SnapshotRequest(name: "s", version: "few", baseDir: fx.base, files: few))
                    #expect(r.filesStored == 40)
                }
                let b = try await Self.syncs(in: fx.root) {
                    let r = try await store.snapshot(SnapshotRequest(name: "s", version: "many", baseDir: fx.base, files: many))
                    #expect(r.filesStored == 400)
                }
                // The content and link directories, once each; one barrier.
                #expect(a.fsyncs.count == b.fsyncs.count, "40 files: \(a.fsyncs.count) fsyncs, 400 files: \(b.fsyncs.count)")
                #expect(b.fsyncs.count <= 2, "fsynced: \(b.fsyncs)")
                #expect(a.syncfs.count == 1 && b.syncfs.count == 1)
                #expect(try fx.storageTemps() == [])
                #expect(try await store.verify().problems == [])
                for v in ["few", "many"] {
                    let info = try await store.info(name: "s", version: v)
                    let out = fx.output(v)
                    _ = try await store.restore(RestoreRequest(name: "s", version: v, outputDir: out))
                    try expectRestored(info, in: out, store: fx, hashing: .readWrite)
                }
            }
        }
    }

    @Test("a failed barrier fails the snapshot, records nothing and puts no content in place",
          arguments: [EIO, ENOSPC])
    func failedBarrier(_ errno: Int32) async throws {
        try await withFixture { fx in
            let files = try Self.writeSmallFiles(fx, 60, seed: 7)
            try await withStore(fx) { store in
                let req = SnapshotRequest(name: "s", version: "1", baseDir: fx.base, files: files)
                await withFaults([rule(.syncfs, errno, in: fx.contentDir)]) { armed in
                    let e = await expectError(errno == ENOSPC ? .noSpace : .io) { try await store.snapshot(req) }
                    #expect(e?.message.contains(fx.contentDir) == true, "\(e?.message ?? "")")
                    #expect(armed.fired(0) == 1)
                }
                #expect(try await store.list().isEmpty)
                #expect(try fx.contentFiles() == [], "content under a final name before it was durable")
                #expect(try fx.storageTemps() == [])
                let info = try await store.snapshot(req).info
                #expect(try await store.verify().problems == [])
                let out = fx.output()
                _ = try await store.restore(RestoreRequest(name: "s", version: "1", outputDir: out))
                try expectRestored(info, in: out, store: fx, hashing: .readWrite)
            }
        }
    }
}
