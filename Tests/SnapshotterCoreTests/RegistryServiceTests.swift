import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// The services `scripts/services.sh start-registry DIR` runs, read from the
/// env file named by SNAPSHOTTER_TEST_SERVICES (the test command sets it).
enum RegistryServices {
    static let env: [String: String]? = {
        guard let path = ProcessInfo.processInfo.environment["SNAPSHOTTER_TEST_SERVICES"],
              let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            var value = String(line[line.index(after: eq)...])
            if value.hasPrefix("'") && value.hasSuffix("'") && value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            out[String(line[..<eq])] = value
        }
        return out
    }()

    static var available: Bool { env != nil }

    static func value(_ key: String) throws -> String {
        guard let v = env?[key] else { throw SnapshotterError(.invalidArgument, "services.env has no \(key)") }
        return v
    }

    /// Runs curl (an independent client) and returns stdout.
    static func curl(_ args: [String]) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["-sS", "--max-time", "20"] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return data
    }

    static func setProxyMode(_ json: String) throws {
        _ = try curl(["-X", "POST", "-H", "Content-Type: application/json", "--data", json, try value("REGISTRY_PROXY_CONTROL") + "/mode"])
    }
}

/// A store with one sandbox-like source tree.
struct RegistryFixture {
    let dir: String
    let src: String

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("regtest-\(UUID().uuidString)").path
        src = dir + "/src"
        try FileManager.default.createDirectory(atPath: src + "/ckpt", withIntermediateDirectories: true)
        try Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: URL(fileURLWithPath: src + "/ckpt/mem"))
        try Data("state\n".utf8).write(to: URL(fileURLWithPath: src + "/ckpt/state"))
        try Data("{\"k\":1}\n".utf8).write(to: URL(fileURLWithPath: src + "/meta.json"))
    }

    var files: [FileRequest] { [FileRequest("ckpt/mem", readOnly: true), FileRequest("ckpt/state", readOnly: true), FileRequest("meta.json")] }

    func open(_ name: String, registry: RegistrySettings?) throws -> Snapshotter {
        var o = StoreOptions()
        o.gc.intervalSeconds = 0
        o.registry = registry
        return try Snapshotter(root: dir + "/" + name, options: o)
    }

    func cleanup() { try? FileManager.default.removeItem(atPath: dir) }

    func outputIsEmpty(_ out: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []).isEmpty
    }
}

@Suite("Registry against real servers", .enabled(if: RegistryServices.available, "set SNAPSHOTTER_TEST_SERVICES (scripts/test.sh does)"))
struct RegistryServiceTests {
    @Test("Publish to a plain HTTP registry: what landed is byte-exact, and a restore finds it there")
    func plainRegistryRoundTrip() async throws {
        let fx = try RegistryFixture()
        defer { fx.cleanup() }
        let endpoint = try RegistryServices.value("REGISTRY_PLAIN")
        let settings = RegistrySettings(endpoint: endpoint, namespace: "it")
        let store = try fx.open("a", registry: settings)
        let version = "v-\(UInt32.random(in: 0...UInt32.max))"
        let report = try await store.snapshot(SnapshotRequest(name: "sandbox", version: version, baseDir: fx.src, files: fx.files))
        // Independent check of what the registry holds.
        let manifest = try RegistryServices.curl(["-H", "Accept: application/vnd.oci.image.manifest.v1+json",
                                                  "\(endpoint)/v2/it/sandbox/manifests/\(version)"])
        #expect(Array(manifest) == SnapshotArtifact.manifest(config: report.info.config))
        let json = try #require(try JSONSerialization.jsonObject(with: manifest) as? [String: Any])
        #expect(json["artifactType"] as? String == "application/vnd.cncf.dragonfly.snapshotter.manifest.v1+json")
        let config = try #require(json["config"] as? [String: Any])
        #expect(config["digest"] as? String == SHA256.digest(report.info.config))
        let blob = try RegistryServices.curl(["\(endpoint)/v2/it/sandbox/blobs/\(SHA256.digest(report.info.config))"])
        #expect(Array(blob) == report.info.config)

        // Forget it locally (content kept by an unpublished twin), then
        // restore: the record comes back from the registry.
        try store.setRegistry(nil)
        _ = try await store.snapshot(SnapshotRequest(name: "sandbox", version: version + "-twin", baseDir: fx.src, files: fx.files))
        try await store.delete(name: "sandbox", version: version)
        try store.setRegistry(settings)
        let out = fx.dir + "/out"
        let r = try await store.restore(RestoreRequest(name: "sandbox", version: version, outputDir: out))
        #expect(r.filesLinked == 2 && r.filesDecoded == 1)
        #expect(FileManager.default.contentsEqual(atPath: fx.src + "/ckpt/mem", andPath: out + "/ckpt/mem"))
        let info = try await store.info(name: "sandbox", version: version)
        #expect(info.config == report.info.config)
        #expect(try await store.verify().isConsistent)
    }

    @Test("HTTPS with a private CA and Basic auth; wrong credentials and an untrusted CA are clear errors")
    func tlsBasic() async throws {
        let fx = try RegistryFixture()
        defer { fx.cleanup() }
        let endpoint = try RegistryServices.value("REGISTRY_TLS")
        let user = try RegistryServices.value("REGISTRY_TLS_USER")
        let password = try RegistryServices.value("REGISTRY_TLS_PASSWORD")
        let ca = try RegistryServices.value("REGISTRY_TLS_CA")
        let good = RegistrySettings(endpoint: endpoint, namespace: "tls", username: user, password: password, caFile: ca)
        let store = try fx.open("a", registry: good)
        _ = try await store.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: fx.src, files: fx.files))
        #expect(try await store.inspectRemote(name: "sb", version: "v1").files.count == 3)

        let wrong = RegistrySettings(endpoint: endpoint, namespace: "tls", username: user, password: "not-the-password-123", caFile: ca)
        try store.setRegistry(wrong)
        await #expect { _ = try await store.snapshot(SnapshotRequest(name: "sb", version: "v2", baseDir: fx.src, files: fx.files)) } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            return e.code == .registry && e.message.contains("401") && !e.message.contains("not-the-password-123")
        }
        #expect(try await store.list().map(\.version) == ["v1"])

        var untrusted = good
        untrusted.caFile = nil
        try store.setRegistry(untrusted)
        await #expect { _ = try await store.inspectRemote(name: "sb", version: "v1") } throws: {
            ($0 as? SnapshotterError)?.code == .registry
        }
        var insecure = untrusted
        insecure.insecure = true
        try store.setRegistry(insecure)
        #expect(try await store.inspectRemote(name: "sb", version: "v1").files.count == 3)
    }

    @Test("Token auth: a pusher's token works; a pull-only token cannot push but can pull")
    func tokenAuth() async throws {
        let fx = try RegistryFixture()
        defer { fx.cleanup() }
        let endpoint = try RegistryServices.value("REGISTRY_TOKEN")
        let ca = try RegistryServices.value("REGISTRY_TLS_CA")  // the realm is https
        let pusher = RegistrySettings(endpoint: endpoint, namespace: "tok",
                                      username: try RegistryServices.value("REGISTRY_TOKEN_USER"),
                                      password: try RegistryServices.value("REGISTRY_TOKEN_PASSWORD"), caFile: ca)
        let reader = RegistrySettings(endpoint: endpoint, namespace: "tok",
                                      username: try RegistryServices.value("REGISTRY_TOKEN_READER"),
                                      password: try RegistryServices.value("REGISTRY_TOKEN_READER_PASSWORD"), caFile: ca)
        let store = try fx.open("a", registry: pusher)
        _ = try await store.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: fx.src, files: fx.files))
        try store.setRegistry(reader)
        #expect(try await store.inspectRemote(name: "sb", version: "v1").files.map(\.relativePath) == ["ckpt/mem", "ckpt/state", "meta.json"])
        await #expect { _ = try await store.snapshot(SnapshotRequest(name: "sb", version: "v2", baseDir: fx.src, files: fx.files)) } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            return e.code == .registry && e.message.contains("unauthorized") && e.message.contains("tok/sb:v2")
        }
        #expect(try await store.list().map(\.version) == ["v1"])
    }

    @Test("A registry that goes away mid-push: clean error, nothing recorded, and a re-run succeeds")
    func registryGoesAway() async throws {
        let fx = try RegistryFixture()
        defer { fx.cleanup() }
        var settings = RegistrySettings(endpoint: try RegistryServices.value("REGISTRY_PROXY"), namespace: "flaky")
        settings.retries = 1
        settings.backoffMilliseconds = 10
        let store = try fx.open("a", registry: settings)
        try RegistryServices.setProxyMode(#"{"mode":"cut_after","bytes":400,"direction":"up","then":"reset"}"#)
        defer { try? RegistryServices.setProxyMode(#"{"mode":"pass"}"#) }
        await #expect { _ = try await store.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: fx.src, files: fx.files)) } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            return e.code == .registry && e.message.contains("flaky/sb:v1")
        }
        #expect(try await store.list().isEmpty)
        try RegistryServices.setProxyMode(#"{"mode":"pass"}"#)
        let r = try await store.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: fx.src, files: fx.files))
        #expect(r.filesStored == 0) // the content stayed stored from the failed run
        #expect(try await store.list().map(\.version) == ["v1"])
    }

    @Test("Hostile registry answers are clear errors and write nothing", arguments: [
        ("huge", SnapshotterError.Code.registry, "larger than"),
        ("hugechunked", .registry, "larger than"),
        ("hugeconfig", .registry, "exceeds the limit"),
        ("malformed", .registry, "not valid JSON"),
        ("wrongtype", .registry, "artifact type"),
        ("wrongconfigtype", .registry, "config media type"),
        ("wrongmediatype", .registry, "content type"),
        ("escape", .registry, "escapes"),
        ("absolute", .registry, "absolute"),
        ("baddigest", .registry, "does not match its digest"),
        ("notfound", .notFound, "MANIFEST_UNKNOWN"),
        ("denied", .registry, "403"),
    ])
    func hostile(repo: String, code: SnapshotterError.Code, mentions: String) async throws {
        let fx = try RegistryFixture()
        defer { fx.cleanup() }
        var settings = RegistrySettings(endpoint: try RegistryServices.value("REGISTRY_HOSTILE"))
        settings.retries = 0
        // A 4 MiB config limit, under the hostile registry's 16 MiB config.
        var o = StoreOptions()
        o.gc.intervalSeconds = 0
        o.registry = settings
        o.maxConfigBytes = 4 << 20
        let store = try Snapshotter(root: fx.dir + "/a", options: o)
        let out = fx.dir + "/out"
        await #expect { _ = try await store.restore(RestoreRequest(name: repo, version: "v1", outputDir: out)) } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            if !(e.code == code && e.message.contains(mentions)) { Issue.record("got \(e.code): \(e.message)") }
            return e.code == code && e.message.contains(mentions)
        }
        #expect(fx.outputIsEmpty(out))
        #expect(try await store.list().isEmpty)
    }

    /// The hostile registry's count of manifest requests for `repo`.
    static func hostileCount(_ repo: String) throws -> Int {
        let data = try RegistryServices.curl([try RegistryServices.value("REGISTRY_HOSTILE") + "/counts"])
        return ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?[repo] as? Int ?? 0
    }

    // No clock in the test: the stall timeout is an hour, so only the
    // cancel can end the restore in the time limit (a hang detector, not a
    // speed bound), and the cancel comes once the request is at the server.
    @Test("Canceling a restore stuck on a registry that never answers does not wait for the stall timeout",
          .timeLimit(.minutes(10)))
    func cancelWhileStuck() async throws {
        let fx = try RegistryFixture()
        defer { fx.cleanup() }
        var settings = RegistrySettings(endpoint: try RegistryServices.value("REGISTRY_HOSTILE"))
        settings.retries = 0
        settings.stallTimeoutSeconds = 3600
        let store = try fx.open("a", registry: settings)
        let flag = CancellationFlag()
        let before = try Self.hostileCount("slow")
        let restore = Task {
            try await store.restore(RestoreRequest(name: "slow", version: "v1", outputDir: fx.dir + "/out"), cancel: flag)
        }
        while try Self.hostileCount("slow") == before { await Task.yield() }
        flag.cancel()
        await #expect { _ = try await restore.value } throws: { ($0 as? SnapshotterError)?.code == .canceled }
        #expect(store.activeOperations == 0)
    }

    @Test("5xx and 429 are retried with backoff; a registry that never answers times out")
    func retriesAndTimeouts() async throws {
        let fx = try RegistryFixture()
        defer { fx.cleanup() }
        let endpoint = try RegistryServices.value("REGISTRY_HOSTILE")
        _ = try RegistryServices.curl(["-X", "POST", endpoint + "/reset"])
        var settings = RegistrySettings(endpoint: endpoint)
        settings.backoffMilliseconds = 20
        settings.stallTimeoutSeconds = 2
        let store = try fx.open("a", registry: settings)
        #expect(try await store.inspectRemote(name: "flaky", version: "v1").files.map(\.relativePath) == ["ckpt1/state"])
        #expect(try await store.inspectRemote(name: "ratelimited", version: "v1").files.count == 1)
        settings.retries = 0
        try store.setRegistry(settings)
        await #expect { _ = try await store.inspectRemote(name: "slow", version: "v1") } throws: {
            ($0 as? SnapshotterError)?.code == .registry
        }
    }
}
