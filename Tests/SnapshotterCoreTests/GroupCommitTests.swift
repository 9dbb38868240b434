import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata

/// Record format 3 (issue 17): a snapshot's files in parts, and a local
/// snapshot of many files committed a group at a time under a header that
/// says it is being written.
@Suite("Snapshots committed in groups")
struct GroupCommitTests {
    /// A store that writes format 3 and commits groups of `group` files.
    static func open(_ fx: Fixture, group: Int = 10) throws -> Snapshotter {
        var options = StoreOptions()
        options.gc.intervalSeconds = 0
        options.recordFormat = 3
        options.groupFiles = group
        options.groupsAbove = group
        return try Snapshotter(root: fx.root, options: options)
    }

    static func withGroupStore<T>(_ fx: Fixture, group: Int = 10, _ body: (Snapshotter) async throws -> T) async throws -> T {
        try await withOpened(try open(fx, group: group), body)
    }

    /// `count` files in four directories, every third read-only.
    static func makeFiles(_ fx: Fixture, _ count: Int, tag: String = "") throws -> [FileRequest] {
        try (0..<count).map { i in
            let path = "d\(i % 4)/f\(i)"
            try writeFile(fx.base + "/" + path, "group \(tag)\(i)\n" + String(repeating: "x", count: i * 7))
            return FileRequest(path, readOnly: i % 3 == 0)
        }
    }

    @Test("A snapshot of many files is committed in groups, and restores, lists, verifies and deletes like any other")
    func roundTrip() async throws {
        try await withFixture { fx in
            let files = try Self.makeFiles(fx, 47)
            try await Self.withGroupStore(fx) { store in
                let report = try await store.snapshot(SnapshotRequest(name: "g", version: "v1", baseDir: fx.base, files: files))
                #expect(report.fileCount == 47 && report.filesStored == 47 && report.info.files.count == 47)
                #expect(report.totalSize == report.info.files.reduce(0) { $0 + $1.size })
                let header = try #require(try store.meta.read { try $0.snapshotHeader(SnapshotKey(name: "g", version: "v1")) })
                #expect(header.parts == 5 && header.count == 47 && header.writer == nil, "five groups of up to ten files, a part each")
                #expect(report.info.files.map(\.relativePath) == files.map(\.relativePath).sorted { PathGuard.precedes($0, $1) })

                // Again (before a restore links the read-only files out, which
                // changes their ctime): they are known by their inodes.
                let again = try await store.snapshot(SnapshotRequest(name: "g", version: "v2", baseDir: fx.base, files: files))
                #expect(again.filesKnownByInode == 16 && again.filesStored == 0)

                _ = try await store.restore(RestoreRequest(name: "g", version: "v1", outputDir: fx.output()))
                try expectRestored(report.info, in: fx.output(), store: fx)
                #expect(try await store.list().map(\.version) == ["v1", "v2"])
                #expect(try await store.info(name: "g", version: "v1").files == report.info.files)
                #expect(try await store.verify().problems.isEmpty)
                _ = try await store.delete(name: "g", version: "v1")
                #expect(try fx.contentFiles().count == 47, "v2 keeps every content file")
                _ = try await store.delete(name: "g", version: "v2")
                #expect(try fx.contentFiles().isEmpty)
                let left = try store.meta.read { txn in (try txn.snapshotsBeingWritten().count, try txn.hasSnapshot(SnapshotKey(name: "g", version: "v1"))) }
                #expect(left.0 == 0 && !left.1)
                #expect(try store.activeLeases().alive.isEmpty, "the writer's lease went with the last group")
            }
        }
    }

    @Test("A snapshot that fails in a later group drops what its earlier groups wrote", arguments: [false, true])
    func failureDropsEarlierGroups(_ cancel: Bool) async throws {
        try await withFixture { fx in
            var files = try Self.makeFiles(fx, 25)
            let flag = CancellationFlag()
            if !cancel { files.append(FileRequest("d9/missing")) }  // sorted last: the third group
            try await Self.withGroupStore(fx) { store in
                let root = fx.root
                let seen = Locked<[Int]>([])
                SnapshotHooks.install(root: root) { point in
                    guard case .groupCommitted(let n) = point else { return }
                    seen.withLock { $0.append(n) }
                    if cancel && n == 20 { flag.cancel() }
                }
                defer { SnapshotHooks.remove(root: root) }
                let request = SnapshotRequest(name: "g", version: "v1", baseDir: fx.base, files: files)
                _ = await expectError(cancel ? .canceled : .notFound) { try await store.snapshot(request, cancel: flag) }
                #expect(seen.withLock { $0 } == [10, 20], "two groups were committed before the failure")
                let key = SnapshotKey(name: "g", version: "v1")
                #expect(try !store.meta.read { try $0.hasSnapshot(key) })
                var references = 0
                try store.meta.read { try $0.forEachReference { _, _ in references += 1 } }
                #expect(references == 0)
                #expect(try fx.contentFiles().isEmpty && fx.linkFiles().isEmpty, "the content of the committed groups went too")
                #expect(try store.activeLeases().alive.isEmpty)
                #expect(try await store.verify().problems.isEmpty)
                // The same snapshot then succeeds.
                if !cancel { files.removeLast() }
                let report = try await store.snapshot(SnapshotRequest(name: "g", version: "v1", baseDir: fx.base, files: files))
                #expect(report.filesStored == 25)
            }
        }
    }

    @Test("While a record is being written it is no snapshot, verify finds nothing wrong, and the collector keeps it until its writer is gone")
    func beingWritten() async throws {
        try await withFixture { fx in
            let files = try Self.makeFiles(fx, 12)
            try await Self.withGroupStore(fx) { store in
                _ = try await store.snapshot(SnapshotRequest(name: "g", version: "done", baseDir: fx.base, files: files))
                let done = try #require(try store.meta.read { try $0.snapshot(SnapshotKey(name: "g", version: "done")) })
                // A writer part way: the first part of the same files, with
                // its references, under a live lease.
                let key = SnapshotKey(name: "g", version: "half")
                let holder = try store.meta.leaseFile.name()
                let lease = try store.meta.write { txn -> Lease in
                    let lease = try txn.putNewLease(snapshots: [key], digests: [], holder: holder)
                    let parts = try txn.putParts(key, FileList(Array(done.files.prefix(6))), from: 0)
                    try txn.putSnapshotHeader(key, SnapshotRecord.Header(created: 1, count: 6, parts: parts, writer: lease.key, given: nil))
                    for f in done.files.prefix(6) { try txn.addReference(f.digest, from: key) }
                    return lease
                }
                #expect(try await store.list().map(\.version) == ["done"])
                _ = await expectError(.notFound) { try await store.restore(RestoreRequest(name: "g", version: "half", outputDir: fx.output())) }
                _ = await expectError(.busy) { try await store.delete(name: "g", version: "half") }
                _ = await expectError(.alreadyExists) {
                    try await store.snapshot(SnapshotRequest(name: "g", version: "half", baseDir: fx.base, files: files))
                }
                #expect(try await store.verify().problems.isEmpty, "its references are not dangling")
                _ = try await store.gc()
                #expect(try store.meta.read { try $0.snapshotsBeingWritten().count } == 1, "its writer is alive")

                // The writer is gone (its lease with it): the collector drops
                // the record and its references; the content stays, as the
                // complete snapshot uses it.
                try store.meta.write { try $0.removeLease(lease.key) }
                _ = try await store.gc()
                #expect(try store.meta.read { try $0.hasSnapshot(key) } == false)
                #expect(try store.meta.read { txn in try done.files.allSatisfy { try txn.references($0.digest).count == 1 } })
                #expect(try fx.contentFiles().count == 12)
                #expect(try await store.verify().problems.isEmpty)
                // Its name is free again.
                let again = try await store.snapshot(SnapshotRequest(name: "g", version: "half", baseDir: fx.base, files: files))
                #expect(again.fileCount == 12)
                // A record whose writer is gone is dropped by the next snapshot
                // of its name, too (one of few files, in one transaction).
                let dead = SnapshotKey(name: "g", version: "dead")
                try store.meta.write { txn in
                    _ = try txn.putParts(dead, FileList(Array(done.files.prefix(2))), from: 0)
                    try txn.putSnapshotHeader(dead, SnapshotRecord.Header(created: 1, count: 2, parts: 1, writer: [9, 9, 9], given: nil))
                }
                let small = try await store.snapshot(SnapshotRequest(name: "g", version: "dead", baseDir: fx.base, files: Array(files.prefix(3))))
                #expect(small.fileCount == 3)
                #expect(try store.meta.read { try $0.snapshotsBeingWritten().isEmpty })
            }
        }
    }

    @Test("A store writing format 3 keeps small snapshots in one transaction, and format 1 stores read them")
    func smallAndMixed() async throws {
        try await withFixture { fx in
            let files = try Self.makeFiles(fx, 8)
            try await Self.withGroupStore(fx) { store in
                _ = try await store.snapshot(SnapshotRequest(name: "s", version: "v3", baseDir: fx.base, files: files))
                let header = try #require(try store.meta.read { try $0.snapshotHeader(SnapshotKey(name: "s", version: "v3")) })
                #expect(header.parts == 1 && header.count == 8)
            }
            // The default store (format 1) reads and restores it, and writes
            // its own beside it.
            try await withStore(fx) { store in
                let info = try await store.info(name: "s", version: "v3")
                #expect(info.files.count == 8)
                _ = try await store.restore(RestoreRequest(name: "s", version: "v3", outputDir: fx.output()))
                try expectRestored(info, in: fx.output(), store: fx)
                _ = try await store.snapshot(SnapshotRequest(name: "s", version: "v1", baseDir: fx.base, files: files))
                #expect(try store.meta.read { try $0.snapshotHeader(SnapshotKey(name: "s", version: "v1")) } == nil)
                #expect(try await store.verify().problems.isEmpty)
            }
        }
    }
}
