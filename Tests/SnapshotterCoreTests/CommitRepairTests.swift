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
                    let names = ((try? fx.contentFiles()) ?? []).enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
                    for n in names {
                        unlink(contentDir + "/" + n)
                        unlink(linkDir + "/" + n)
                    }
                    deleted.withLock { $0 += names }
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
