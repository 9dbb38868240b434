import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// The Dragonfly stand-in (Tests/services/dfdaemon_standin.py) on a Unix
/// socket, storing in moto's S3. Its faults are global, so the suite runs
/// its tests one at a time.
@Suite("Content through Dragonfly (the dfdaemon stand-in) and S3", .serialized,
       .enabled(if: RegistryServices.env?["DRAGONFLY_ENDPOINT"] != nil, "Dragonfly stand-in not running"))
struct DragonflyTransportTests {
    func settings(endpoint: String? = nil, fallback: Bool = false) throws -> ContentSettings {
        var c = ContentSettings(url: "s3://" + (try RegistryServices.value("S3_BUCKET")))
        c.endpoint = try RegistryServices.value("S3_ENDPOINT")
        c.region = try RegistryServices.value("S3_REGION")
        c.accessKeyID = try RegistryServices.value("S3_ACCESS_KEY_ID")
        c.secretAccessKey = try RegistryServices.value("S3_SECRET_ACCESS_KEY")
        c.dragonflyEndpoint = try endpoint ?? RegistryServices.value("DRAGONFLY_ENDPOINT")
        c.dragonflyFallback = fallback
        c.retries = 2
        // Generous: on a loaded 2-core machine the Python stand-in may take
        // seconds to answer its first health check (3 s failed in a CI-like
        // run). No test here depends on this timeout: a dead daemon refuses
        // at once, and stalls are the stall timeout's.
        c.connectTimeoutSeconds = 60
        return c
    }

    func control(_ path: String, _ json: String? = nil) throws -> [String: Any] {
        var args = [try RegistryServices.value("DRAGONFLY_CONTROL") + path]
        if let json { args = ["-X", "POST", "-H", "Content-Type: application/json", "--data", json] + args }
        let data = try RegistryServices.curl(args)
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    func fault(_ json: String) throws { _ = try control("/fault", json) }
    func clearCache() throws { _ = try control("/cache/clear", "{}") }

    func calls(_ method: String) throws -> Int {
        let counts = try control("/counts")
        return ((counts["methods"] as? [String: Any])?[method] as? Int) ?? 0
    }

    /// Two roots, a directory registry, content through Dragonfly; the
    /// checkpoint is unique to the test so nothing is already in S3.
    func machines(memBytes: Int = 0) throws -> TwoMachines {
        var m = try TwoMachines()
        m.content = try settings()
        if memBytes > 0 {
            var rng = SystemRandomNumberGenerator()
            let words = (0..<(memBytes / 8)).map { _ in rng.next() as UInt64 }
            try words.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: m.fx.src + "/ckpt/mem")) }
        }
        try Data("unique \(UUID())\n".utf8).write(to: URL(fileURLWithPath: m.fx.src + "/meta.json"))
        return m
    }

    func nothingRecorded(_ b: Snapshotter, _ m: TwoMachines) async throws {
        #expect(try await b.list().isEmpty)
        let dir = m.fx.dir + "/b/storage/content/xxh3"
        let left = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        #expect(left.isEmpty, "content left behind: \(left)")
        #expect(m.fx.outputIsEmpty(m.fx.dir + "/out"))
    }

    @Test("Root A snapshots through Dragonfly, an empty root B restores every byte")
    func endToEnd() async throws {
        try fault(#"{"mode":"none"}"#)
        let m = try machines()
        defer { m.fx.cleanup() }
        let uploads = try calls("UploadPersistentTask")
        let a = try m.open("a")
        _ = try await a.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: m.fx.src, files: m.fx.files))
        #expect(try calls("UploadPersistentTask") >= uploads + 1)
        try clearCache()
        let downloads = try calls("DownloadPersistentTask")
        let b = try m.open("b")
        let out = m.fx.dir + "/out"
        _ = try await b.restore(RestoreRequest(name: "sb", version: "v1", outputDir: out))
        #expect(m.same(out))
        #expect(try calls("DownloadPersistentTask") == downloads + 3)
        #expect(try await b.verify().isConsistent)
        // A second snapshot of the same content asks the daemon again on a
        // new root (ALREADY_EXISTS is success).
        let c = try m.open("c")
        _ = try await c.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: m.fx.src, files: m.fx.files))
        // Nothing of the daemon's outputs stays in B's content directory.
        let names = try FileManager.default.contentsOfDirectory(atPath: m.fx.dir + "/b/storage/content")
        #expect(!names.contains { $0.hasSuffix(".df") })
    }

    @Test("Upload, ALREADY_EXISTS, download with progress, and a missing object is not found (INTERNAL and NOT_FOUND)")
    func transportDirectly() async throws {
        try fault(#"{"mode":"none"}"#)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dftest-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = Data((0..<(9 << 20)).map { UInt8(truncatingIfNeeded: ($0 &* 2654435761) >> 11) }) + Data(UUID().uuidString.utf8)
        try bytes.write(to: URL(fileURLWithPath: dir + "/src"))
        let digest = Digest(UInt64.random(in: 1...UInt64.max))
        let t = try DragonflyTransport(try settings())
        let flag = CancellationFlag()
        try await BlockingPool.shared.run { try t.upload(digest, path: dir + "/src", cancel: flag) }
        try await BlockingPool.shared.run { try t.upload(digest, path: dir + "/src", cancel: flag) }
        #expect(try await BlockingPool.shared.run { try t.has(digest) })
        try clearCache()
        let tmp = dir + "/tmp"
        let total = Locked<Int64>(0)
        let got = try await BlockingPool.shared.run { try Self.download(t, digest, to: tmp, cancel: flag) { n in total.withLock { $0 += n } } }
        #expect(try Data(contentsOf: URL(fileURLWithPath: tmp)) == bytes)
        #expect(total.withLock { $0 } == Int64(bytes.count))
        #expect(!FileManager.default.fileExists(atPath: tmp + ".df"))
        // Nothing copied: the file is the daemon's cache file, linked.
        #expect(got.replaced && got.links == 2, "\(got)")
        for code in ["INTERNAL", "NOT_FOUND"] {
            _ = try control("/settings", #"{"missing_code":"\#(code)"}"#)
            defer { _ = try? control("/settings", #"{"missing_code":"INTERNAL"}"#) }
            let missing = Digest(UInt64.random(in: 1...UInt64.max))
            #expect(try await !BlockingPool.shared.run { try t.has(missing) })
            let path = dir + "/missing-\(code)"
            await #expect { try await BlockingPool.shared.run {
                _ = try Self.download(t, missing, to: path, cancel: flag) { _ in }
            } } throws: { e in (e as? SnapshotterError)?.code == .notFound }
        }
    }

    /// Downloads into a new file at `path` as the engine does; whether the
    /// transport put its own file there instead, and that file's link count.
    static func download(_ t: DragonflyTransport, _ d: Digest, to path: String, cancel: CancellationFlag,
                         onBytes: @escaping (Int64) -> Void) throws -> (replaced: Bool, links: Int) {
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0o600)
        defer { close(fd) }
        switch try t.download(d, into: fd, tempPath: path, cancel: cancel, tap: nil, onBytes: onBytes) {
        case .written:
            return (false, Int(try Sys.fstat(fd, path).st_nlink))
        case .replaced(let other):
            defer { close(other) }
            return (true, Int(try Sys.fstat(other, path).st_nlink))
        }
    }

    /// Root A snapshots; with the stand-in's `fault` set (and its cache
    /// cleared) an empty root B's restore fails as `refused` accepts and
    /// records nothing; with the fault cleared a retry restores every byte
    /// and B verifies. `stallTimeoutSeconds` applies to the failing
    /// restore only (the retry opens B again with the default).
    func faultedRestoreThenRetry(_ fault: String, memBytes: Int = 0, stallTimeoutSeconds: Double? = nil,
                                 refused: @escaping (SnapshotterError) -> Bool) async throws {
        var m = try machines(memBytes: memBytes)
        defer { m.fx.cleanup() }
        let a = try m.open("a")
        _ = try await a.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: m.fx.src, files: m.fx.files))
        try clearCache()
        let defaults = m.content
        if let stallTimeoutSeconds { m.content.stallTimeoutSeconds = stallTimeoutSeconds }
        try self.fault(fault)
        defer { try? self.fault(#"{"mode":"none"}"#) }
        var b = try m.open("b")
        let out = m.fx.dir + "/out"
        await #expect { _ = try await b.restore(RestoreRequest(name: "sb", version: "v1", outputDir: out)) } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            return refused(e)
        }
        try await nothingRecorded(b, m)
        try self.fault(#"{"mode":"none"}"#)
        if stallTimeoutSeconds != nil {
            m.content = defaults
            b = try m.open("b")
        }
        _ = try await b.restore(RestoreRequest(name: "sb", version: "v1", outputDir: out))
        #expect(m.same(out))
        #expect(try await b.verify().isConsistent)
    }

    @Test("Corrupted bytes from the daemon: a corrupt error, nothing recorded, a retry after the fault clears succeeds")
    func corrupt() async throws {
        try await faultedRestoreThenRetry(#"{"mode":"corrupt"}"#) { e in
            e.code == .corrupt && e.message.contains("corrupt")
        }
    }

    @Test("A piece length of 2^63 or more from the daemon is a transport error naming it, not a trap; nothing recorded")
    func hugePieceLength() async throws {
        try await faultedRestoreThenRetry(#"{"mode":"huge_piece_length"}"#) { e in
            e.code == .transport && e.message.contains("piece length")
        }
    }

    @Test("A stream cut after some pieces is a clear transport error; nothing recorded; a retry succeeds")
    func streamCut() async throws {
        let endpoint = try RegistryServices.value("DRAGONFLY_ENDPOINT")
        try await faultedRestoreThenRetry(#"{"mode":"cut_after_pieces","pieces":1}"#, memBytes: 10 << 20) { e in
            e.code == .transport && e.message.contains(endpoint) && e.message.contains("incomplete")
        }
    }

    @Test("A daemon that keeps the stream open but sends nothing fails after the stall timeout; nothing recorded")
    func stalledDaemon() async throws {
        // The stand-in's handlers stay asleep for a while after the failure:
        // the retry, with the default timeout, waits for them.
        let endpoint = try RegistryServices.value("DRAGONFLY_ENDPOINT")
        try await faultedRestoreThenRetry(#"{"mode":"delay","delay_ms":2500}"#, stallTimeoutSeconds: 1) { e in
            e.code == .transport && e.message.contains(endpoint) && e.message.contains("sent nothing for 1")
        }
    }

    @Test("A dead daemon socket is an error naming the endpoint; with the fallback the restore goes to S3")
    func deadSocket() async throws {
        try fault(#"{"mode":"none"}"#)
        var m = try machines()
        defer { m.fx.cleanup() }
        let a = try m.open("a")
        _ = try await a.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: m.fx.src, files: m.fx.files))
        let dead = "unix://\(m.fx.dir)/no-such-dfdaemon.sock"
        m.content = try settings(endpoint: dead)
        let b = try m.open("b")
        let out = m.fx.dir + "/out"
        await #expect { _ = try await b.restore(RestoreRequest(name: "sb", version: "v1", outputDir: out)) } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            return e.code == .transport && e.message.contains(dead) && e.message.contains("cannot be reached")
        }
        try await nothingRecorded(b, m)
        // A socket file nobody listens on: connection refused.
        let refused = m.fx.dir + "/refused.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, c) in refused.utf8.enumerated() { p[i] = c }
        }
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        close(fd)
        m.content = try settings(endpoint: "unix://" + refused)
        let b2 = try m.open("b")
        await #expect { _ = try await b2.restore(RestoreRequest(name: "sb", version: "v1", outputDir: out)) } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            return e.code == .transport && e.message.contains("unix://" + refused)
        }
        // With the fallback on, S3 directly.
        m.content = try settings(endpoint: dead, fallback: true)
        let b3 = try m.open("b")
        _ = try await b3.restore(RestoreRequest(name: "sb", version: "v1", outputDir: out))
        #expect(m.same(out))
        #expect(try await b3.verify().isConsistent)
    }

    /// Starts a dead stand-in again (same socket, same control port).
    func restartDaemon() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [repo.path + "/scripts/services.sh", "start-content", try RegistryServices.value("SERVICES_DIR")]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }

    @Test("The daemon killed mid-download: a clear error, or with the fallback the restore goes to S3")
    func daemonKilled() async throws {
        try fault(#"{"mode":"none"}"#)
        var m = try machines(memBytes: 10 << 20)
        defer { m.fx.cleanup() }
        let a = try m.open("a")
        _ = try await a.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: m.fx.src, files: m.fx.files))
        try clearCache()
        let endpoint = try RegistryServices.value("DRAGONFLY_ENDPOINT")
        let out = m.fx.dir + "/out"
        m.content.downloadConcurrency = 1
        try fault(#"{"mode":"die","pieces":1}"#)
        let b = try m.open("b")
        await #expect { _ = try await b.restore(RestoreRequest(name: "sb", version: "v1", outputDir: out)) } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            return e.code == .transport && e.message.contains(endpoint)
        }
        try await nothingRecorded(b, m)
        try restartDaemon()
        try clearCache()
        try fault(#"{"mode":"die","pieces":1}"#)
        m.content = try settings(fallback: true)
        m.content.downloadConcurrency = 1
        let b2 = try m.open("b")
        defer { try? restartDaemon() }
        _ = try await b2.restore(RestoreRequest(name: "sb", version: "v1", outputDir: out))
        #expect(m.same(out))
        #expect(try await b2.verify().isConsistent)
    }

    @Test("Settings are checked: gRPC target forms, object storage provider, fallback needs S3 credentials")
    func settingsChecked() throws {
        var c = try settings(endpoint: "tcp://127.0.0.1:65000")
        #expect(throws: SnapshotterError.self) { _ = try makeTransport(c) }
        c = try settings()
        c.url = "file:///tmp/x"
        #expect(throws: SnapshotterError.self) { _ = try makeTransport(c) }
        c = try settings(fallback: true)
        c.accessKeyID = ""
        #expect(throws: SnapshotterError.self) { _ = try makeTransport(c) }
        c = try settings()
        c.url = "oss://bucket"
        #expect(try makeTransport(c) is DragonflyTransport)
    }

    @Test("A canceled download ends without waiting for the daemon, canceled, the daemon's output removed")
    func canceledDownload() async throws {
        try fault(#"{"mode":"none"}"#)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dfcancel-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("cancel me \(UUID())".utf8).write(to: URL(fileURLWithPath: dir + "/src"))
        let digest = Digest(UInt64.random(in: 1...UInt64.max))
        let t = try DragonflyTransport(try settings())
        try await BlockingPool.shared.run { try t.upload(digest, path: dir + "/src", cancel: CancellationFlag()) }
        try clearCache()
        // The daemon sleeps a minute before its first message; the test
        // cancels once the call has reached it.
        try fault(#"{"mode":"delay","delay_ms":60000,"times":1}"#)
        defer { try? fault(#"{"mode":"none"}"#) }
        let before = try calls("DownloadPersistentTask")
        let flag = CancellationFlag()
        let download = Task { try await BlockingPool.shared.run { try Self.download(t, digest, to: dir + "/tmp", cancel: flag) { _ in } } }
        while try calls("DownloadPersistentTask") == before { await Task.yield() }
        flag.cancel()
        await #expect { _ = try await download.value } throws: { e in (e as? SnapshotterError)?.code == .canceled }
        #expect(!FileManager.default.fileExists(atPath: dir + "/tmp.df"))
    }

    @Test("TCP targets (host:port, dns:///host:port, http://host:port): upload, ALREADY_EXISTS, download, not found")
    func tcpTargets() async throws {
        try fault(#"{"mode":"none"}"#)
        let hostPort = try RegistryServices.value("DRAGONFLY_TCP_ENDPOINT")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dftcp-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = Data("over tcp \(UUID())".utf8)
        try bytes.write(to: URL(fileURLWithPath: dir + "/src"))
        let digest = Digest(UInt64.random(in: 1...UInt64.max))
        let flag = CancellationFlag()
        for (i, target) in [hostPort, "dns:///" + hostPort, "http://" + hostPort].enumerated() {
            let t = try DragonflyTransport(try settings(endpoint: target))
            try await BlockingPool.shared.run { try t.upload(digest, path: dir + "/src", cancel: flag) }
            try clearCache()
            let tmp = dir + "/tmp\(i)"
            _ = try await BlockingPool.shared.run { try Self.download(t, digest, to: tmp, cancel: flag) { _ in } }
            #expect(try Data(contentsOf: URL(fileURLWithPath: tmp)) == bytes, "\(target)")
            await #expect { try await BlockingPool.shared.run {
                _ = try Self.download(t, Digest(UInt64.random(in: 1...UInt64.max)), to: tmp + ".missing", cancel: flag) { _ in }
            } } throws: { e in (e as? SnapshotterError)?.code == .notFound }
        }
        // Nothing listens there: an error naming the target.
        let dead = "127.0.0.1:1"
        let t = try DragonflyTransport(try settings(endpoint: dead))
        await #expect { try await BlockingPool.shared.run { try t.upload(digest, path: dir + "/src", cancel: flag) } } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            return e.code == .transport && e.message.contains(dead) && e.message.contains("cannot be reached")
        }
    }

    @Test("The daemon's cache on another file system: its hard link fails, it is asked to copy, the bytes arrive",
          .enabled(if: geteuid() == 0, "mounts a tmpfs"))
    func otherFileSystem() async throws {
        try fault(#"{"mode":"none"}"#)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dfxdev-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let mnt = dir + "/tmpfs"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        try #require(Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt]) == 0)
        defer { _ = Self.run("/bin/umount", ["-l", mnt]) }
        let bytes = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }) + Data(UUID().uuidString.utf8)
        try bytes.write(to: URL(fileURLWithPath: dir + "/src"))
        let digest = Digest(UInt64.random(in: 1...UInt64.max))
        let flag = CancellationFlag()
        let t = try DragonflyTransport(try settings())
        try await BlockingPool.shared.run { try t.upload(digest, path: dir + "/src", cancel: flag) }
        try clearCache()
        let downloads = try calls("DownloadPersistentTask")
        let got = try await BlockingPool.shared.run { try Self.download(t, digest, to: mnt + "/tmp", cancel: flag) { _ in } }
        #expect(try Data(contentsOf: URL(fileURLWithPath: mnt + "/tmp")) == bytes)
        #expect(got.replaced && got.links == 1, "\(got)")
        #expect(try calls("DownloadPersistentTask") == downloads + 2)
        // The transport remembers: the next download asks for a copy at once.
        let again = try await BlockingPool.shared.run { try Self.download(t, digest, to: mnt + "/tmp2", cancel: flag) { _ in } }
        #expect(again.replaced)
        #expect(try calls("DownloadPersistentTask") == downloads + 3)
    }

    static func run(_ tool: String, _ args: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        do { try p.run() } catch { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}
