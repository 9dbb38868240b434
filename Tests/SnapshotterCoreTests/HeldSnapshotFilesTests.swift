import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata

/// A restore reads a snapshot's files where they are in the metadata map,
/// under a held read transaction, instead of a decoded list (issue 17).
@Suite("Held snapshot files")
struct HeldSnapshotFilesTests {
    static func files(_ count: Int) -> [SnapshotFile] {
        (0..<count).map { i in
            let path = i % 5 == 0 ? "dir-\(i % 3)/a-path-longer-than-fifteen-bytes-\(i)" : "f\(i)"
            return SnapshotFile(relativePath: path, digest: Digest(UInt64(i) &+ 11), readOnly: i % 2 == 0,
                                mode: 0o640, uid: UInt32(i % 4), gid: 7, size: Int64(i), mtimeNanos: Int64(i) &* 1_000)
        }
    }

    @Test("Every file reads back by index, in any order, with the record's count and total size")
    func readsBack() async throws {
        try await withFixture { fx in
            try await withStore(fx) { store in
                let key = SnapshotKey(name: "h", version: "1")
                let files = Self.files(1_000)
                let record = try SnapshotRecord(created: 5, files: files, givenConfig: nil).encode()
                try store.meta.write { try $0.putSnapshot(key, encodedRecord: record, accessed: 5) }
                let held = try #require(try store.meta.heldSnapshotFiles(key))
                #expect(held.count == 1_000)
                #expect(held.totalSize == (0..<1_000).reduce(0, +))
                let order = Array(0..<1_000).shuffled()
                #expect(order.allSatisfy { held.file($0) == files[$0] })
                let list = held.list
                #expect(list.indices.map { list[$0] } == files)
                // A writer commits meanwhile: the held files stay as they were.
                try store.meta.write { try $0.putSnapshot(SnapshotKey(name: "h", version: "2"), encodedRecord: record, accessed: 6) }
                #expect(held.file(999) == files[999])
                #expect(held.file(-1).relativePath.isEmpty && held.file(1_000).relativePath.isEmpty)
                held.end()
                #expect(held.file(3).relativePath.isEmpty, "nothing is read after the transaction ends")
                #expect(try store.meta.heldSnapshotFiles(SnapshotKey(name: "h", version: "none")) == nil)
            }
        }
    }

    @Test("A malformed record is refused when held, naming the snapshot")
    func malformedRefused() async throws {
        try await withFixture { fx in
            try await withStore(fx) { store in
                let key = SnapshotKey(name: "h", version: "bad")
                var record = try SnapshotRecord(created: 5, files: Self.files(40), givenConfig: nil).encode()
                record.removeLast(7)
                try store.meta.write { try $0.putSnapshot(key, encodedRecord: record, accessed: 5) }
                let e = await expectError(.corrupt) { _ = try store.meta.heldSnapshotFiles(key) }
                #expect(e?.message.contains("snapshot h:bad") == true, "\(e?.message ?? "")")
                // The failed hold ended its transaction: a writer is not kept
                // from reusing pages, and a new hold works.
                try store.meta.write { try $0.putSnapshot(key, encodedRecord: try SnapshotRecord(created: 5, files: Self.files(3), givenConfig: nil).encode(), accessed: 5) }
                #expect(try store.meta.heldSnapshotFiles(key)?.count == 3)
            }
        }
    }

    @Test("A restore holds no lease on digests: its snapshot's lease keeps the content")
    func restoreLeasesTheSnapshotOnly() async throws {
        try await withFixture { fx in
            var requests: [FileRequest] = []
            for i in 0..<50 {
                try writeFile(fx.base + "/d\(i % 4)/f\(i)", "file \(i)\n")
                requests.append(FileRequest("d\(i % 4)/f\(i)", readOnly: i % 2 == 0))
            }
            try await withStore(fx) { store in
                _ = try await store.snapshot(SnapshotRequest(name: "s", version: "1", baseDir: fx.base, files: requests))
                let seen = Locked<LeaseView?>(nil)
                let out = fx.output()
                // Read while exporting, when the lease is held.
                _ = try await store.restore(RestoreRequest(name: "s", version: "1", outputDir: out), progress: { e in
                    if e.phase == .exporting, seen.withLock({ $0 == nil }), let view = try? store.activeLeases() {
                        seen.withLock { $0 = view }
                    }
                    return true
                })
                let view = try #require(seen.withLock { $0 })
                #expect(view.snapshots == [SnapshotKey(name: "s", version: "1")])
                #expect(view.digests.isEmpty)
                for i in 0..<50 {
                    #expect(try String(contentsOfFile: out + "/d\(i % 4)/f\(i)", encoding: .utf8) == "file \(i)\n")
                }
            }
        }
    }
}
