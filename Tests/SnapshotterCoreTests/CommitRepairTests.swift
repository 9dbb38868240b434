#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote
@testable import SnapshotterCore

/// Content removed between a snapshot's store and its commit (as another
/// process's collector may remove what no record names yet) is stored again
/// from the source before the record names it.
@Suite("Commit repair")
struct CommitRepairTests {
    @Test("Content and links deleted before the commit are stored again from their paths, and the snapshot restores", arguments: [false, true])
    func deletedBeforeCommit(_ readOnly: Bool) async throws {
        try await withFixture { fx in
            for i in 0..<6 { try writeFile(fx.base + "/d\(i % 2)/f\(i)", "content \(i)\n") }
            let root = fx.root
            let contentDir = fx.contentDir, linkDir = fx.linkDir
            let deleted = Locked<[String]>([])
            try await withStore(fx) { store in
                SnapshotHooks.install(root: root) { point in
                    guard case .stored = point else { return }
                    // Every second content file and link goes, as a sweep
                    // of unrecorded files would take them.
                    removeEverySecond(fx, into: deleted)
                }
                defer { SnapshotHooks.remove(root: root) }
                let files = (0..<6).map { FileRequest("d\($0 % 2)/f\($0)", readOnly: readOnly) }
                let report = try await store.snapshot(SnapshotRequest(name: "r", version: "v1", baseDir: fx.base, files: files))
                #expect(report.info.files.count == 6)
                SnapshotHooks.remove(root: root)
                #expect(deleted.withLock { $0.count } == 3, "the hook ran once and took three")
                for n in deleted.withLock({ $0 }) {
                    #expect(try lstatOf(contentDir + "/" + n).st_size > 0, "content \(n) is back")
                    if readOnly { #expect(try lstatOf(linkDir + "/" + n).st_nlink >= 2, "link \(n) is back") }
                }
                _ = try await store.restore(RestoreRequest(name: "r", version: "v1", outputDir: fx.output()))
                try expectRestored(report.info, in: fx.output(), store: fx)
                let verify = try await store.verify()
                #expect(verify.problems.isEmpty, "\(verify.problems)")
            }
        }
    }
}

/// A local snapshot large enough for one barrier commits beside the
/// barrier's renames: content a collector removes (holding the writer lock,
/// as every collector does) before the commit takes the lock is stored
/// again; what is renamed after is in place when the commit ends.
@Suite("Commit beside the barrier")
struct CommitBesideBarrierTests {
    @Test("Content removed under the writer lock while the barrier renames is stored again, and the snapshot restores",
          arguments: [false, true])
    func removedWhilePlacing(_ readOnly: Bool) async throws {
        try await withFixture { fx in
            let count = 3 * DurableBatch.fsyncEachUpTo
            for i in 0..<count { try writeFile(fx.base + "/d\(i % 3)/f\(i)", "beside \(i)\n") }
            let root = fx.root
            let contentDir = fx.contentDir, linkDir = fx.linkDir
            let deleted = Locked<[String]>([])
            let reached = Locked(0)
            try await withStore(fx) { store in
                SnapshotHooks.install(root: root) { point in
                    guard case .placing = point else { return }
                    reached.withLock { $0 += 1 }
                    // Half the content is in place: a collector holding the
                    // writer lock takes every second file of it, and links.
                    try? store.meta.write { _ in removeEverySecond(fx, into: deleted) }
                }
                defer { SnapshotHooks.remove(root: root) }
                let files = (0..<count).map { FileRequest("d\($0 % 3)/f\($0)", readOnly: readOnly) }
                let report = try await store.snapshot(SnapshotRequest(name: "b", version: "v1", baseDir: fx.base, files: files))
                SnapshotHooks.remove(root: root)
                #expect(report.info.files.count == count)
                #expect(reached.withLock { $0 } == 1, "the commit ran beside the barrier once")
                #expect(!deleted.withLock { $0.isEmpty }, "the collector found content in place")
                for n in deleted.withLock({ $0 }) {
                    #expect(try lstatOf(contentDir + "/" + n).st_size > 0, "content \(n) is back")
                    if readOnly { #expect(try lstatOf(linkDir + "/" + n).st_nlink >= 2, "link \(n) is back") }
                }
                #expect(try fx.contentFiles().count == count, "every content file is in place")
                _ = try await store.restore(RestoreRequest(name: "b", version: "v1", outputDir: fx.output()))
                try expectRestored(report.info, in: fx.output(), store: fx)
                let verify = try await store.verify()
                #expect(verify.problems.isEmpty, "\(verify.problems)")
            }
        }
    }

    @Test("A snapshot of few files commits after its barrier, not beside it")
    func fewFilesCommitAfter() async throws {
        try await withFixture { fx in
            for i in 0..<4 { try writeFile(fx.base + "/f\(i)", "few \(i)\n") }
            let root = fx.root
            let points = Locked<[String]>([])
            try await withStore(fx) { store in
                SnapshotHooks.install(root: root) { point in
                    switch point {
                    case .placing: points.withLock { $0.append("placing") }
                    case .stored: points.withLock { $0.append("stored") }
                    default: break
                    }
                }
                defer { SnapshotHooks.remove(root: root) }
                let files = (0..<4).map { FileRequest("f\($0)", readOnly: false) }
                _ = try await store.snapshot(SnapshotRequest(name: "few", version: "v1", baseDir: fx.base, files: files))
                #expect(points.withLock { $0 } == ["stored"])
            }
        }
    }
}

/// Removes every second content file in place and its link, as a collector
/// takes what no record names, and adds their names to `deleted`.
private func removeEverySecond(_ fx: Fixture, into deleted: Locked<[String]>) {
    let names = ((try? fx.contentFiles()) ?? []).enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
    for n in names {
        unlink(fx.contentDir + "/" + n)
        unlink(fx.linkDir + "/" + n)
    }
    deleted.withLock { $0 += names }
}
