import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// Two stores on one machine standing for two machines: A snapshots and
/// publishes, B has never seen the snapshot and restores it.
struct TwoMachines {
    let fx: RegistryFixture
    var registry: RegistrySettings
    var content: ContentSettings

    init(registry: RegistrySettings? = nil, content: ContentSettings? = nil) throws {
        fx = try RegistryFixture()
        self.registry = registry ?? RegistrySettings(endpoint: "file://\(fx.dir)/registry")
        self.content = content ?? ContentSettings(url: "file://\(fx.dir)/content")
    }

    func open(_ name: String) throws -> Snapshotter {
        var o = StoreOptions()
        o.gc.intervalSeconds = 0
        o.registry = registry
        o.content = content
        return try Snapshotter(root: fx.dir + "/" + name, options: o)
    }

    func same(_ out: String) -> Bool {
        ["ckpt/mem", "ckpt/state", "meta.json"].allSatisfy {
            FileManager.default.contentsEqual(atPath: fx.src + "/" + $0, andPath: out + "/" + $0)
        }
    }
}

@Suite("Content transport: restore on a machine that never saw the snapshot")
struct ContentTransportTests {
    @Test("Through a directory registry and directory content, with no services")
    func directories() async throws {
        let m = try TwoMachines()
        defer { m.fx.cleanup() }
        let a = try m.open("a")
        let snap = try await a.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: m.fx.src, files: m.fx.files))
        let b = try m.open("b")
        let out = m.fx.dir + "/out"
        let r = try await b.restore(RestoreRequest(name: "sb", version: "v1", outputDir: out))
        #expect(m.same(out))
        #expect(r.filesLinked == 2 && r.filesDecoded == 1)
        // B recorded the snapshot with its references and config bytes.
        let info = try await b.info(name: "sb", version: "v1")
        #expect(info.config == snap.info.config)
        let report = try await b.verify()
        #expect(report.isConsistent && report.snapshotsChecked == 1 && report.contentFilesChecked == 3)
        // Downloaded content is the store's own: readable by its owner only,
        // as ingested content is.
        let contentDir = m.fx.dir + "/b/storage/content/xxh3"
        let modes = try FileManager.default.contentsOfDirectory(atPath: contentDir).map { name -> mode_t in
            var st = stat()
            _ = lstat(contentDir + "/" + name, &st)
            return st.st_mode & 0o777
        }
        #expect(modes.count == 3 && modes.allSatisfy { $0 == 0o400 }, "\(modes.map { String($0, radix: 8) })")
        // Deleting it on B frees the content: the references were recorded.
        let d = try await b.delete(name: "sb", version: "v1")
        #expect(d.contentFilesRemoved == 3)
    }

    @Test("Corrupt content from the remote is refused; nothing is recorded; a retry after the fix succeeds")
    func corruptRemoteContent() async throws {
        let m = try TwoMachines()
        defer { m.fx.cleanup() }
        let a = try m.open("a")
        let snap = try await a.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: m.fx.src, files: m.fx.files))
        let mem = try #require(snap.info.files.first { $0.relativePath == "ckpt/mem" }).digest
        let remote = "\(m.fx.dir)/content/xxh3/\(mem.hex)"
        let good = try Data(contentsOf: URL(fileURLWithPath: remote))
        var bad = good
        bad[bad.count / 2] ^= 0xff
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: remote)
        try bad.write(to: URL(fileURLWithPath: remote))
        let b = try m.open("b")
        let out = m.fx.dir + "/out"
        await #expect { _ = try await b.restore(RestoreRequest(name: "sb", version: "v1", outputDir: out)) } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            return e.code == .corrupt && e.message.contains("\(mem)") && e.message.contains("corrupt")
        }
        #expect(try await b.list().isEmpty)
        let contentDir = m.fx.dir + "/b/storage/content/xxh3"
        #expect(!FileManager.default.fileExists(atPath: contentDir + "/" + mem.hex))
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []).isEmpty)
        // Overwriting: the files already there are replaced only once every
        // digest is in, so a failed restore leaves them as they were.
        let existing = m.fx.dir + "/existing"
        for f in ["ckpt/mem", "ckpt/state", "meta.json"] {
            try FileManager.default.createDirectory(atPath: existing + "/ckpt", withIntermediateDirectories: true)
            try Data("old \(f)".utf8).write(to: URL(fileURLWithPath: existing + "/" + f))
        }
        await #expect(throws: SnapshotterError.self) {
            _ = try await b.restore(RestoreRequest(name: "sb", version: "v1", outputDir: existing, overwrite: true))
        }
        for f in ["ckpt/mem", "ckpt/state", "meta.json"] {
            #expect(try String(contentsOfFile: existing + "/" + f, encoding: .utf8) == "old \(f)")
        }
        try good.write(to: URL(fileURLWithPath: remote))
        _ = try await b.restore(RestoreRequest(name: "sb", version: "v1", outputDir: out))
        #expect(m.same(out))
    }

    @Test("A bare object storage endpoint (host:port, as the Go snapshotter takes it) means https")
    func bareEndpointIsHTTPS() throws {
        var c = ContentSettings(url: "s3://bucket")
        c.accessKeyID = "id"
        c.secretAccessKey = "secret"
        c.endpoint = "storage.example:9000"
        #expect(try S3Transport(c).remoteID == "s3://bucket@https://storage.example:9000")
        c.endpoint = "ftp://storage.example"
        #expect(throws: SnapshotterError.self) { try S3Transport(c) }
    }

    @Test("A Dragonfly endpoint without object storage makes a transport that fails each call, naming it")
    func dragonflyWithoutObjectStorage() throws {
        var c = ContentSettings(url: "")
        c.dragonflyEndpoint = "unix:///run/dfdaemon.sock"
        let t = try makeTransport(c)
        #expect { _ = try t.has(Digest(0x1234)) } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            return e.code == .invalidArgument && e.message.contains("object storage")
        }
        c.dragonflyEndpoint = "tcp://127.0.0.1:1"
        #expect { _ = try makeTransport(c) } throws: { e in (e as? SnapshotterError)?.code == .invalidArgument }
    }

    @Test("Eight restores of overlapping snapshots at once, each digest downloaded once")
    func concurrentRestores() async throws {
        let m = try TwoMachines()
        defer { m.fx.cleanup() }
        let a = try m.open("a")
        for v in 0..<4 {
            try Data("variant \(v)\n".utf8).write(to: URL(fileURLWithPath: m.fx.src + "/meta.json"))
            _ = try await a.snapshot(SnapshotRequest(name: "sb", version: "v\(v)", baseDir: m.fx.src, files: m.fx.files))
        }
        let b = try m.open("b")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                group.addTask {
                    let out = "\(m.fx.dir)/out\(i)"
                    _ = try await b.restore(RestoreRequest(name: "sb", version: "v\(i % 4)", outputDir: out))
                    let meta = try String(contentsOfFile: out + "/meta.json", encoding: .utf8)
                    #expect(meta == "variant \(i % 4)\n")
                    #expect(FileManager.default.contentsEqual(atPath: m.fx.src + "/ckpt/mem", andPath: out + "/ckpt/mem"))
                }
            }
            try await group.waitForAll()
        }
        #expect(try await b.list().count == 4)
        #expect(try await b.verify().isConsistent)
    }

    @Test("One download per digest in flight, however many restores want it")
    func singleFlight() async throws {
        let flight = SingleFlight()
        let calls = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    try await flight.run(Digest(42)) {
                        calls.withLock { $0 += 1 }
                        try await Task.sleep(nanoseconds: 100_000_000)
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(calls.withLock { $0 } == 1)
    }
}

@Suite("Content through S3 (moto, strict signatures)", .enabled(if: RegistryServices.env?["S3_ENDPOINT"] != nil, "content services not running"))
struct S3TransportTests {
    func s3(_ secret: String? = nil, endpoint key: String = "S3_ENDPOINT") throws -> ContentSettings {
        var c = ContentSettings(url: "s3://" + (try RegistryServices.value("S3_BUCKET")))
        c.endpoint = try RegistryServices.value(key)
        c.region = try RegistryServices.value("S3_REGION")
        c.accessKeyID = try RegistryServices.value("S3_ACCESS_KEY_ID")
        c.secretAccessKey = try secret ?? RegistryServices.value("S3_SECRET_ACCESS_KEY")
        c.retries = 3
        return c
    }

    @Test("Registry + S3: root A snapshots, an empty root B restores every byte")
    func endToEnd() async throws {
        var m = try TwoMachines(registry: RegistrySettings(endpoint: try RegistryServices.value("REGISTRY_PLAIN"), namespace: "s3e2e"))
        m.content = try s3()
        defer { m.fx.cleanup() }
        let version = "v\(UInt32.random(in: 0...UInt32.max))"
        let a = try m.open("a")
        _ = try await a.snapshot(SnapshotRequest(name: "sb", version: version, baseDir: m.fx.src, files: m.fx.files))
        let b = try m.open("b")
        let out = m.fx.dir + "/out"
        _ = try await b.restore(RestoreRequest(name: "sb", version: version, outputDir: out))
        #expect(m.same(out))
        #expect(try await b.verify().isConsistent)
    }

    @Test("A wrong secret is a clear authorization error that does not leak the secret")
    func wrongSecret() async throws {
        var m = try TwoMachines()
        m.content = try s3("definitely-not-the-secret")
        defer { m.fx.cleanup() }
        try Data("unique \(UUID())".utf8).write(to: URL(fileURLWithPath: m.fx.src + "/meta.json"))
        let a = try m.open("a")
        await #expect { _ = try await a.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: m.fx.src, files: m.fx.files)) } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            return e.code == .transport && e.message.contains("403") && e.message.contains("access denied")
                && !e.message.contains("definitely-not-the-secret")
        }
        #expect(try await a.list().isEmpty)
    }

    @Test("Large content goes up in parts and comes back whole")
    func multipart() async throws {
        var m = try TwoMachines()
        var c = try s3()
        c.multipartThreshold = 5 << 20
        c.partSize = 5 << 20
        m.content = c
        defer { m.fx.cleanup() }
        let big = (0..<(12 << 20)).map { UInt8(truncatingIfNeeded: ($0 &* 2654435761) >> 13) }
        try Data(big).write(to: URL(fileURLWithPath: m.fx.src + "/ckpt/mem"))
        let a = try m.open("a")
        _ = try await a.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: m.fx.src, files: m.fx.files))
        let b = try m.open("b")
        _ = try await b.restore(RestoreRequest(name: "sb", version: "v1", outputDir: m.fx.dir + "/out"))
        #expect(m.same(m.fx.dir + "/out"))
    }

    @Test("A connection dropped mid-download resumes with a range request")
    func resumesAfterDrop() async throws {
        var m = try TwoMachines()
        m.content = try s3(endpoint: "S3_ENDPOINT")
        defer { m.fx.cleanup() }
        let big = (0..<(6 << 20)).map { UInt8(truncatingIfNeeded: ($0 &* 40503) >> 7) }
        try Data(big).write(to: URL(fileURLWithPath: m.fx.src + "/ckpt/mem"))
        let a = try m.open("a")
        _ = try await a.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: m.fx.src, files: m.fx.files))
        // B downloads through the proxy, which cuts the first response
        // after 1 MiB and then lets traffic pass.
        m.content = try s3(endpoint: "S3_PROXY")
        let control = try RegistryServices.value("S3_PROXY_CONTROL")
        _ = try RegistryServices.curl(["-X", "POST", "-H", "Content-Type: application/json",
                                       "--data", #"{"mode":"cut_after","bytes":1048576,"direction":"down","then":"pass"}"#, control + "/mode"])
        defer { _ = try? RegistryServices.curl(["-X", "POST", "--data", #"{"mode":"pass"}"#, control + "/mode"]) }
        let b = try m.open("b")
        _ = try await b.restore(RestoreRequest(name: "sb", version: "v1", outputDir: m.fx.dir + "/out"))
        #expect(m.same(m.fx.dir + "/out"))
    }
}
