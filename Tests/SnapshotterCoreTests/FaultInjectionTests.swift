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

/// One failing step of a write path: the rules that make it fail with an
/// errno, and what the error must name.
struct WriteFault: Sendable, CustomTestStringConvertible {
    let name: String
    let rules: @Sendable (Fixture, String, Int32) -> [Sys.Faults.Rule]
    let named: @Sendable (Fixture, String) -> String
    var testDescription: String { name }
}

private func tmp(_ dir: String) -> String { dir + "/.snapshotter-tmp-" }
private let everyCall = Int.max

/// Every write step of a snapshot (content file, read-only link, the copy
/// taken when linking fails across filesystems, the metadata commit).
let snapshotWriteFaults: [WriteFault] = [
    WriteFault(name: "content temp create", rules: { fx, _, e in [rule(.open, e, in: tmp(fx.contentDir))] }, named: { fx, _ in fx.contentDir }),
    WriteFault(name: "content write", rules: { fx, _, e in [rule(.write, e, in: tmp(fx.contentDir))] }, named: { fx, _ in fx.contentDir }),
    WriteFault(name: "content fsync", rules: { fx, _, e in [rule(.fsync, e, in: tmp(fx.contentDir))] }, named: { fx, _ in fx.contentDir }),
    WriteFault(name: "content rename", rules: { fx, _, e in [rule(.rename, e, in: fx.contentDir)] }, named: { fx, _ in fx.contentDir }),
    WriteFault(name: "read-only link", rules: { fx, _, e in [rule(.link, e, in: fx.linkDir)] }, named: { fx, _ in fx.linkDir }),
    // The barrier fsyncs a small file's new link by its name in the store.
    WriteFault(name: "linked source fsync", rules: { fx, _, e in [rule(.fsync, e, in: fx.linkDir + "/")] }, named: { fx, _ in fx.linkDir }),
    WriteFault(name: "copy temp create", rules: { fx, _, e in
        [rule(.link, EXDEV, in: fx.linkDir, times: everyCall), rule(.open, e, in: tmp(fx.linkDir))] }, named: { fx, _ in fx.linkDir }),
    WriteFault(name: "copy truncate", rules: { fx, _, e in
        [rule(.link, EXDEV, in: fx.linkDir, times: everyCall), rule(.ftruncate, e, in: tmp(fx.linkDir))] }, named: { fx, _ in fx.linkDir }),
    WriteFault(name: "copy write", rules: { fx, _, e in
        [rule(.link, EXDEV, in: fx.linkDir, times: everyCall), rule(.pwrite, e, in: tmp(fx.linkDir))] }, named: { fx, _ in fx.linkDir }),
    WriteFault(name: "copy fchmod", rules: { fx, _, e in
        [rule(.link, EXDEV, in: fx.linkDir, times: everyCall), rule(.fchmod, e, in: fx.linkDir)] }, named: { fx, _ in fx.linkDir }),
    WriteFault(name: "copy futimens", rules: { fx, _, e in
        [rule(.link, EXDEV, in: fx.linkDir, times: everyCall), rule(.futimens, e, in: fx.linkDir)] }, named: { fx, _ in fx.linkDir }),
    WriteFault(name: "copy fsync", rules: { fx, _, e in
        [rule(.link, EXDEV, in: fx.linkDir, times: everyCall), rule(.fsync, e, in: tmp(fx.linkDir))] }, named: { fx, _ in fx.linkDir }),
    WriteFault(name: "copy rename", rules: { fx, _, e in
        [rule(.link, EXDEV, in: fx.linkDir, times: everyCall), rule(.rename, e, in: tmp(fx.linkDir))] }, named: { fx, _ in fx.linkDir }),
    WriteFault(name: "metadata commit", rules: { fx, _, e in [rule(.metadataCommit, e, in: fx.root)] }, named: { fx, _ in fx.root + "/metadata" }),
]

/// Every write step of a restore into `out` (the second closure argument).
let restoreWriteFaults: [WriteFault] = [
    WriteFault(name: "output temp create", rules: { _, out, e in [rule(.open, e, in: tmp(out))] }, named: { _, out in out }),
    WriteFault(name: "output truncate", rules: { _, out, e in [rule(.ftruncate, e, in: out)] }, named: { _, out in out }),
    WriteFault(name: "output write", rules: { _, out, e in [rule(.pwrite, e, in: out)] }, named: { _, out in out }),
    WriteFault(name: "output fchmod", rules: { _, out, e in [rule(.fchmod, e, in: out)] }, named: { _, out in out }),
    WriteFault(name: "output futimens", rules: { _, out, e in [rule(.futimens, e, in: out)] }, named: { _, out in out }),
    WriteFault(name: "output rename", rules: { _, out, e in [rule(.rename, e, in: out)] }, named: { _, out in out }),
    WriteFault(name: "output link", rules: { _, out, e in [rule(.link, e, in: out)] }, named: { _, out in out }),
    WriteFault(name: "output directory", rules: { _, out, e in [rule(.mkdir, e, in: out + "/ro")] }, named: { _, out in out + "/ro" }),
]

/// Every write step of a restore that downloads its content: the closure
/// gets the restoring store's fixture and the output directory.
let remoteRestoreWriteFaults: [WriteFault] = [
    WriteFault(name: "download temp create", rules: { b, _, e in [rule(.open, e, in: tmp(b.contentDir))] }, named: { b, _ in b.contentDir }),
    WriteFault(name: "download write", rules: { b, _, e in [rule(.pwrite, e, in: tmp(b.contentDir))] }, named: { b, _ in b.contentDir }),
    WriteFault(name: "download fsync", rules: { b, _, e in [rule(.fsync, e, in: tmp(b.contentDir))] }, named: { b, _ in b.contentDir }),
    WriteFault(name: "download rename", rules: { b, _, e in [rule(.rename, e, in: tmp(b.contentDir))] }, named: { b, _ in b.contentDir }),
    WriteFault(name: "link temp create", rules: { b, _, e in [rule(.open, e, in: tmp(b.linkDir))] }, named: { b, _ in b.linkDir }),
    WriteFault(name: "link fchmod", rules: { b, _, e in [rule(.fchmod, e, in: tmp(b.linkDir))] }, named: { b, _ in b.linkDir }),
    WriteFault(name: "link futimens", rules: { b, _, e in [rule(.futimens, e, in: tmp(b.linkDir))] }, named: { b, _ in b.linkDir }),
    WriteFault(name: "link fsync", rules: { b, _, e in [rule(.fsync, e, in: tmp(b.linkDir))] }, named: { b, _ in b.linkDir }),
    WriteFault(name: "link rename", rules: { b, _, e in [rule(.rename, e, in: tmp(b.linkDir))] }, named: { b, _ in b.linkDir }),
    WriteFault(name: "output temp create", rules: { _, out, e in [rule(.open, e, in: tmp(out))] }, named: { _, out in out }),
    WriteFault(name: "output fchmod", rules: { _, out, e in [rule(.fchmod, e, in: tmp(out))] }, named: { _, out in out }),
    WriteFault(name: "output rename", rules: { _, out, e in [rule(.rename, e, in: out)] }, named: { _, out in out }),
    WriteFault(name: "output link", rules: { _, out, e in [rule(.link, e, in: out)] }, named: { _, out in out }),
    WriteFault(name: "metadata commit", rules: { b, _, e in [rule(.metadataCommit, e, in: b.root)] }, named: { b, _ in b.root + "/metadata" }),
]

/// Each write step fails with EIO and with ENOSPC: the operation fails with
/// the matching status naming the path, leaves no temporary file, the store
/// stays consistent, and the same call without the fault succeeds. Rules
/// are scoped to each test's directory; the suite is serialized anyway so
/// a failure is easy to read.
@Suite("Fault injection", .serialized)
struct FaultInjectionTests {
    static let files = [FileRequest("rw.bin"), FileRequest("ro/model.bin", readOnly: true)]

    static func writeSources(_ fx: Fixture) throws {
        try writeFile(fx.base + "/rw.bin", patternBytes(300_000, seed: 11))
        try writeFile(fx.base + "/ro/model.bin", patternBytes(200_000, seed: 12), mode: 0o444)
    }

    static func request(_ version: String = "1") -> SnapshotRequest {
        SnapshotRequest(name: "faults", version: version, baseDir: "", files: files)
    }

    static func code(_ errno: Int32) -> SnapshotterError.Code { errno == ENOSPC ? .noSpace : .io }

    /// Runs `operation` with `rules` installed: it must fail with the status
    /// `errno` maps to, and the fault under test (the last rule) must have
    /// fired exactly once. Returns the error for the caller's checks.
    static func failing<R>(_ rules: [Sys.Faults.Rule], _ fault: WriteFault, _ errno: Int32,
                           _ operation: () async throws -> R) async -> SnapshotterError? {
        await withFaults(rules) { armed in
            let e = await expectError(code(errno), "\(fault.name)", operation)
            #expect(armed.fired(rules.count - 1) == 1, "the fault was injected")
            return e
        }
    }

    /// Problems other than orphan content: content a failed snapshot put in
    /// place before it failed has no record yet, which verify reports and
    /// the collector sweeps after its grace period (docs/store-health.md).
    static func problems(_ store: Snapshotter) async throws -> [VerifyProblem] {
        try await store.verify().problems.filter { $0.kind != .orphanContent }
    }

    static func temps(under dir: String) throws -> [String] {
        try allFiles(under: dir).filter { isTempName(Paths.basename($0)) }
    }

    @Test("snapshot: a failing write step fails the snapshot cleanly", arguments: snapshotWriteFaults, [EIO, ENOSPC])
    func snapshotWriteFails(_ fault: WriteFault, _ errno: Int32) async throws {
        try await withFixture { fx in
            try Self.writeSources(fx)
            var req = Self.request()
            req.baseDir = fx.base
            try await withStore(fx) { store in
                let rules = fault.rules(fx, "", errno)
                let error = await Self.failing(rules, fault, errno) { try await store.snapshot(req) }
                #expect(error?.message.contains(fault.named(fx, "")) == true, "\(error?.message ?? "") names \(fault.named(fx, ""))")
                #expect(try fx.storageTemps() == [])
                #expect(try await store.list().isEmpty, "nothing recorded")
                #expect(try await Self.problems(store) == [])

                let info = try await store.snapshot(req).info
                #expect(try await store.verify().problems == [])
                let out = fx.output()
                _ = try await store.restore(RestoreRequest(name: "faults", version: "1", outputDir: out))
                try expectRestored(info, in: out, store: fx, hashing: .readWrite)
            }
        }
    }

    @Test("restore: a failing write step fails the restore cleanly", arguments: restoreWriteFaults, [EIO, ENOSPC])
    func restoreWriteFails(_ fault: WriteFault, _ errno: Int32) async throws {
        try await withFixture { fx in
            try Self.writeSources(fx)
            var req = Self.request()
            req.baseDir = fx.base
            try await withStore(fx) { store in
                let info = try await store.snapshot(req).info
                let out = fx.output()
                let rules = fault.rules(fx, out, errno)
                let error = await Self.failing(rules, fault, errno) {
                    try await store.restore(RestoreRequest(name: "faults", version: "1", outputDir: out))
                }
                #expect(error?.message.contains(fault.named(fx, out)) == true, "\(error?.message ?? "") names \(fault.named(fx, out))")
                #expect(try Self.temps(under: out) == [])
                let left = try allFiles(under: out)
                #expect(left == [], "a failed restore removes what it placed")
                #expect(try await store.verify().problems == [])

                let again = fx.output("retry")
                _ = try await store.restore(RestoreRequest(name: "faults", version: "1", outputDir: again))
                try expectRestored(info, in: again, store: fx)
            }
        }
    }

    @Test("restore from remote: a failing write step fails the restore cleanly", arguments: remoteRestoreWriteFaults, [EIO, ENOSPC])
    func remoteRestoreWriteFails(_ fault: WriteFault, _ errno: Int32) async throws {
        try await withFixture { fx in
            try Self.writeSources(fx)
            var o = StoreOptions()
            o.gc.intervalSeconds = 0
            o.registry = RegistrySettings(endpoint: "file://\(fx.dir)/registry")
            o.content = ContentSettings(url: "file://\(fx.dir)/content")
            var req = Self.request()
            req.baseDir = fx.base
            let a = try Snapshotter(root: fx.root, options: o)
            let info = try await a.snapshot(req).info
            await a.close()
            let b = Fixture(dir: fx.dir + "/b")
            let store = try Snapshotter(root: b.root, options: o)
            let out = fx.output()
            let rules = fault.rules(b, out, errno)
            let error = await Self.failing(rules, fault, errno) {
                try await store.restore(RestoreRequest(name: "faults", version: "1", outputDir: out))
            }
            #expect(error?.message.contains(fault.named(b, out)) == true, "\(error?.message ?? "") names \(fault.named(b, out))")
            #expect(try b.storageTemps() == [])
            #expect(try allFiles(under: out) == [], "a failed restore takes back what it placed")
            #expect(try await store.list().isEmpty)
            #expect(try await Self.problems(store) == [])

            _ = try await store.restore(RestoreRequest(name: "faults", version: "1", outputDir: out))
            for f in info.files { try expectComplete(f, at: out + "/" + f.relativePath) }
            #expect(try await store.verify().problems == [])
            await store.close()
        }
    }

    @Test("metadata commit: a failing delete keeps the snapshot; a retry deletes it", arguments: [EIO, ENOSPC])
    func deleteCommitFails(_ errno: Int32) async throws {
        try await withFixture { fx in
            try Self.writeSources(fx)
            var req = Self.request()
            req.baseDir = fx.base
            try await withStore(fx) { store in
                _ = try await store.snapshot(req)
                let error = await withFaults([rule(.metadataCommit, errno, in: fx.root)]) { armed in
                    let e = await expectError(Self.code(errno)) { try await store.delete(name: "faults", version: "1") }
                    #expect(armed.fired(0) == 1)
                    return e
                }
                #expect(error?.message.contains(fx.root + "/metadata") == true)
                #expect(try await store.list().count == 1)
                #expect(try fx.contentFiles().count == 2, "no content was removed")
                #expect(try await store.verify().problems == [])
                let d = try await store.delete(name: "faults", version: "1")
                #expect(d.contentFilesRemoved == 2)
                #expect(try await store.verify().problems == [])
            }
        }
    }

    @Test("gc: a failing statvfs fails the collection with an error naming the store; the next one works")
    func gcStatvfsFails() async throws {
        try await withFixture { fx in
            try await withStore(fx) { store in
                let e = await withFaults([rule(.statvfs, EIO, in: fx.root)]) { armed in
                    let e = await expectError(.io) { try await store.gc() }
                    #expect(armed.fired(0) == 1)
                    return e
                }
                #expect(e?.message.contains(fx.root) == true, "\(e?.message ?? "")")
                _ = try await store.gc()
            }
        }
    }

    @Test("EXDEV on link: the snapshot keeps a copy of the read-only file")
    func snapshotCrossDevice() async throws {
        try await withFixture { fx in
            try Self.writeSources(fx)
            var req = Self.request()
            req.baseDir = fx.base
            try await withStore(fx) { store in
                let info = try await withFaults([rule(.link, EXDEV, in: fx.linkDir, times: everyCall)]) { armed in
                    let info = try await store.snapshot(req).info
                    #expect(armed.fired(0) == 1)
                    return info
                }
                let ro = try #require(info.files.first { $0.readOnly })
                let link = fx.linkDir + "/" + ro.digest.hex
                #expect(try statOf(link).st_ino != statOf(fx.base + "/ro/model.bin").st_ino, "a copy, not a link")
                #expect(try statOf(link).st_nlink == 1)
                #expect(try sameBytes(link, fx.base + "/ro/model.bin"))
                try expectComplete(ro, at: link)
                #expect(try await store.verify().problems == [])
                let out = fx.output()
                let r = try await store.restore(RestoreRequest(name: "faults", version: "1", outputDir: out))
                #expect(r.filesLinked == 1)
                try expectRestored(info, in: out, store: fx)
            }
        }
    }

    @Test("EXDEV on link: the restore copies the read-only file and says so")
    func restoreCrossDevice() async throws {
        try await withFixture { fx in
            try Self.writeSources(fx)
            var req = Self.request()
            req.baseDir = fx.base
            try await withStore(fx) { store in
                let info = try await store.snapshot(req).info
                let out = fx.output()
                let r = try await withFaults([rule(.link, EXDEV, in: out, times: everyCall)]) { armed in
                    let r = try await store.restore(RestoreRequest(name: "faults", version: "1", outputDir: out))
                    #expect(armed.fired(0) >= 1)
                    return r
                }
                #expect(r.filesCopied == 1 && r.filesLinked == 0 && r.filesDecoded == 1)
                for f in info.files {
                    try expectComplete(f, at: out + "/" + f.relativePath)
                    #expect(try statOf(out + "/" + f.relativePath).st_nlink == 1, "\(f.relativePath) is its own file")
                }
                #expect(try allFiles(under: out) == ["ro/model.bin", "rw.bin"])
            }
        }
    }

    @Test("EINTR on every call is retried: snapshot, restore and delete succeed")
    func interruptedCallsAreRetried() async throws {
        try await withFixture { fx in
            try Self.writeSources(fx)
            var req = Self.request()
            req.baseDir = fx.base
            let ops: [SysOp] = [.open, .read, .pread, .write, .pwrite, .fsync, .rename, .link, .ftruncate,
                                .fchmod, .futimens, .fstat, .lstat, .lseek, .unlink, .mkdir]
            let rules = ops.map { rule($0, EINTR, in: fx.dir, times: 3) }
            try await withStore(fx) { store in
                try await withFaults(rules) { armed in
                    let info = try await store.snapshot(req).info
                    let out = fx.output()
                    _ = try await store.restore(RestoreRequest(name: "faults", version: "1", outputDir: out))
                    try expectRestored(info, in: out, store: fx)
                    #expect(try await store.delete(name: "faults", version: "1").contentFilesRemoved == 2)
                    for (i, op) in ops.enumerated() {
                        #expect(armed.fired(i) == 3, "\(op) was interrupted three times")
                    }
                }
                #expect(try await store.verify().problems == [])
            }
        }
    }

    @Test("EINTR while walking below a directory retries the same component")
    func interruptedWalkRetriesComponent() async throws {
        try await withTempDir { dir in
            try writeFile(dir + "/a/b/file", "below\n")
            // A decoy one level up: skipping "a" would open this one.
            try writeFile(dir + "/b/file", "decoy\n")
            let dfd = try posix("open \(dir)") { open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            defer { close(dfd) }
            let fd = try await withFaults([rule(.openat, EINTR, in: "walk " + dir)]) { armed in
                let fd = try Sys.walkBeneath(dfd, "a/b/file", O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0, what: "walk \(dir)/a/b/file")
                #expect(armed.fired(0) == 1)
                return fd
            }
            defer { close(fd) }
            var buf = [UInt8](repeating: 0, count: 16)
            let n = read(fd, &buf, buf.count)
            #expect(String(decoding: buf.prefix(max(0, n)), as: UTF8.self) == "below\n")
        }
    }
}
