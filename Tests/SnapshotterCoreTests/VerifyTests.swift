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

/// verify: every record against the files (missing, corrupt, orphaned), and
/// what --repair does about it.
@Suite("Verify and repair")
struct VerifyTests {
    @Test("verify --repair drops snapshots whose content is gone and rebuilds links")
    func repair() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        try await fx.make(store, 0, readOnly: true)
        try await fx.make(store, 1)
        let d0 = try await store.info(name: "sb", version: "v0").files[0].digest
        let d1 = try await store.info(name: "sb", version: "v1").files[0].digest
        try FileManager.default.removeItem(atPath: fx.root + "/storage/snapshot/xxh3/" + d0.hex)
        try FileManager.default.removeItem(atPath: fx.root + "/storage/content/xxh3/" + d1.hex)
        let r = try await store.verify(repair: true)
        #expect(r.problems.contains { $0.kind == .missingLink && $0.digest == d0 })
        #expect(r.problems.contains { $0.kind == .missingContent && $0.digest == d1 })
        #expect(r.repairs.contains { $0.contains("dropped snapshot sb:v1") })
        #expect(r.repairs.contains { $0.contains("rebuilt read-only link \(d0)") })
        #expect(try await store.verify().isConsistent)
        #expect(try await fx.versions(store) == ["v0"])
        _ = try await store.restore(RestoreRequest(name: "sb", version: "v0", outputDir: fx.dir + "/out"))
        #expect(FileManager.default.contentsEqual(atPath: fx.dir + "/src/f0", andPath: fx.dir + "/out/f0"))
    }

    @Test("a missing content file is reported by verify and refused by restore before anything is written")
    func missingContentRefused() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/a.txt", "a\n")
            try writeFile(fx.base + "/b.txt", "b\n")
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "missing", version: "1", baseDir: fx.base,
                                                                    files: [FileRequest("a.txt"), FileRequest("b.txt")])).info
                let gone = try #require(info.files.first { $0.relativePath == "b.txt" }).digest
                try posix("unlink") { unlink(fx.contentDir + "/" + gone.hex) }
                let problems = try await store.verify().problems
                #expect(problems.map(\.kind) == [.missingContent])
                #expect(problems.first?.digest == gone)
                let out = fx.output()
                await expectError(.corrupt) {
                    try await store.restore(RestoreRequest(name: "missing", version: "1", outputDir: out))
                }
                #expect(try allFiles(under: out) == [], "checked before anything was written")
            }
        }
    }

    @Test("verify reports a read-only source changed in place as a corrupt link")
    func changedReadOnlySourceIsACorruptLink() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/ro.bin", patternBytes(10_000, seed: 1), mode: 0o644)
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "changed", version: "1", baseDir: fx.base,
                                                                    files: [FileRequest("ro.bin", readOnly: true)])).info
                #expect(try await store.verify().problems == [])
                // Breaking the read-only promise: rewrite the same inode.
                let fd = try posix("open") { open(fx.base + "/ro.bin", O_WRONLY | O_CLOEXEC) }
                _ = pwrite(fd, [UInt8(0xff)], 1, 100)
                close(fd)
                let problems = try await store.verify().problems
                #expect(problems.map(\.kind) == [.corruptLink])
                #expect(problems.first?.digest == info.files[0].digest)
            }
        }
    }

    @Test("a read-only link that is a symlink (as older versions stored for a symlinked source) is reported by verify and rebuilt by repair")
    func symlinkLinkRepaired() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/ro.txt", "read-only\n")
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "k", version: "v1", baseDir: fx.base,
                                                                    files: [FileRequest("ro.txt", readOnly: true)])).info
                let link = fx.linkDir + "/" + (try #require(info.files.first)).digest.hex
                _ = try posix("unlink") { unlink(link) }
                _ = try posix("symlink") { symlink(fx.base + "/ro.txt", link) }
                let found = try await store.verify()
                #expect(found.problems.map(\.kind) == [.corruptLink], "\(found.problems)")
                _ = try await store.verify(repair: true)
                #expect((try lstatOf(link).st_mode & S_IFMT) == S_IFREG)
                #expect(try await store.verify().problems == [])
                _ = try await store.restore(RestoreRequest(name: "k", version: "v1", outputDir: fx.output()))
                #expect((try lstatOf(fx.output() + "/ro.txt").st_mode & S_IFMT) == S_IFREG)
                #expect(try readText(fx.output() + "/ro.txt") == "read-only\n")
            }
        }
    }
}
