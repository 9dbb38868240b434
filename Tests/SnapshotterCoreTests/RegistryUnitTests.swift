import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

@Suite("Registry building blocks")
struct RegistryUnitTests {
    @Test("SHA-256 matches known digests")
    func sha256KnownAnswers() {
        #expect(SHA256.digest([]) == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.digest(Array("abc".utf8)) == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let bytes = (0..<3).flatMap { _ in (0..<256).map { UInt8($0) } }
        #expect(SHA256.digest(bytes) == "sha256:f3a25aa93aa2fbba28d79260535bbd6a5eb0fc1c24a8b0f04e12b484c1dfe363")
    }

    @Test("WWW-Authenticate challenges are parsed with quoted parameters")
    func challengeParsing() throws {
        let c = try #require(AuthChallenge.parse(#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#))
        #expect(c.scheme == "bearer")
        #expect(c.params["realm"] == "https://auth.example/token")
        #expect(c.params["service"] == "registry.example")
        #expect(c.params["scope"] == "repository:a/b:pull,push")
        let b = try #require(AuthChallenge.parse(#"Basic realm="Registry Realm""#))
        #expect(b.scheme == "basic" && b.params["realm"] == "Registry Realm")
        #expect(AuthChallenge.parse("") == nil)
    }

    @Test("Base64 and percent-encoding")
    func encodings() {
        #expect(Base64.encode(Array("alice:s3cret".utf8)) == "YWxpY2U6czNjcmV0")
        #expect(Base64.encode(Array("a".utf8)) == "YQ==")
        #expect(Base64.encode(Array("ab".utf8)) == "YWI=")
        #expect(percentEncode("repository:a/b:pull,push") == "repository%3Aa%2Fb%3Apull%2Cpush")
    }

    @Test("The manifest is byte-exact and names the config by sha256")
    func manifestBytes() {
        let config = Array(#"{"files":[]}"#.utf8)
        let m = String(decoding: SnapshotArtifact.manifest(config: config), as: UTF8.self)
        #expect(m == #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.cncf.dragonfly.snapshotter.manifest.v1+json","config":{"mediaType":"application/vnd.cncf.dragonfly.snapshotter.config.v1+json","digest":"\#(SHA256.digest(config))","size":12},"layers":[]}"#)
    }

    @Test("Manifests with layers [], null, absent or the empty descriptor are accepted")
    func manifestLayerForms() throws {
        let digest = SHA256.digest(Array("x".utf8))
        let head = #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.cncf.dragonfly.snapshotter.manifest.v1+json","config":{"mediaType":"application/vnd.cncf.dragonfly.snapshotter.config.v1+json","digest":"\#(digest)","size":1}"#
        for tail in [#","layers":[]}"#, #","layers":null}"#, "}",
                     #","layers":[{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}]}"#] {
            let d = try SnapshotArtifact.parseManifest(Array((head + tail).utf8), what: "t")
            #expect(d.digest == digest && d.size == 1)
        }
    }

    @Test("Hostile manifests are clear registry errors", arguments: [
        ("not json", "not valid JSON"),
        (#"[1]"#, "not a JSON object"),
        (#"{"schemaVersion":1}"#, "schemaVersion"),
        (#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#, "media type"),
        (#"{"schemaVersion":2,"artifactType":"application/vnd.other","config":{}}"#, "artifact type"),
        (#"{"schemaVersion":2,"config":{"mediaType":"application/octet-stream","digest":"sha256:00","size":1}}"#, "config media type"),
        (#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.cncf.dragonfly.snapshotter.config.v1+json","digest":"md5:00","size":1}}"#, "sha256"),
        (#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.cncf.dragonfly.snapshotter.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":-1}}"#, "size"),
        (#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.cncf.dragonfly.snapshotter.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar"}]}"#, "layer"),
    ])
    func hostileManifests(input: String, mentions: String) {
        #expect {
            try SnapshotArtifact.parseManifest(Array(input.utf8), what: "fetch x:v1")
        } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            return e.code == .registry && e.message.contains(mentions) && e.message.contains("fetch x:v1")
        }
    }

    @Test("Endpoints must be http, https or file URLs")
    func endpointSchemes() {
        #expect(throws: SnapshotterError.self) { try makeRegistry(RegistrySettings(endpoint: "ftp://x")) }
        #expect(throws: SnapshotterError.self) { try makeRegistry(RegistrySettings(endpoint: "file://relative/path")) }
        #expect(throws: SnapshotterError.self) { try makeRegistry(RegistrySettings(endpoint: "http://x", caFile: "/nonexistent/ca.pem")) }
        #expect(RegistrySettings(endpoint: "http://x", namespace: "/team/").repository("sb") == "team/sb")
        #expect(RegistrySettings(endpoint: "http://x").repository("sb") == "sb")
    }
}

@Suite("Registry in a directory (OCI image layout)")
struct LayoutRegistryTests {
    private func tempDir() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("layout-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("Publish then fetch returns the config byte for byte, in a valid layout")
    func roundTrip() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reg = try makeRegistry(RegistrySettings(endpoint: "file://\(dir)", namespace: "team"))
        let config = Array(#"{"files":[]}"#.utf8)
        try reg.publish(name: "sb", version: "v1", config: config)
        #expect(try reg.fetch(name: "sb", version: "v1") == config)
        let layout = try String(contentsOfFile: dir + "/oci-layout", encoding: .utf8)
        #expect(layout.contains("\"imageLayoutVersion\":\"1.0.0\""))
        let index = try String(contentsOfFile: dir + "/index.json", encoding: .utf8)
        #expect(index.contains("\"org.opencontainers.image.ref.name\":\"team/sb:v1\""))
        let blobs = try FileManager.default.contentsOfDirectory(atPath: dir + "/blobs/sha256")
        #expect(blobs.count == 2)
        #expect(blobs.contains(String(SHA256.digest(config).dropFirst(7))))
        // Publishing the same tag again replaces the entry.
        let config2 = Array(#"{"files":null}"#.utf8)
        try reg.publish(name: "sb", version: "v1", config: config2)
        #expect(try reg.fetch(name: "sb", version: "v1") == config2)
    }

    @Test("A missing tag is not found; a tampered blob is refused")
    func missingAndTampered() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reg = try makeRegistry(RegistrySettings(endpoint: "file://\(dir)"))
        #expect { try reg.fetch(name: "sb", version: "v1") } throws: { ($0 as? SnapshotterError)?.code == .notFound }
        let config = Array(#"{"files":[]}"#.utf8)
        try reg.publish(name: "sb", version: "v1", config: config)
        let blob = dir + "/blobs/sha256/" + SHA256.digest(config).dropFirst(7)
        try Data(#"{"files":{}}"#.utf8).write(to: URL(fileURLWithPath: blob))
        #expect { try reg.fetch(name: "sb", version: "v1") } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            return e.code == .registry && e.message.contains("does not match its digest")
        }
    }

    @Test("Publishers in parallel all land in the index")
    func concurrentPublishers() async throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let settings = RegistrySettings(endpoint: "file://\(dir)")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<16 {
                group.addTask {
                    let reg = try makeRegistry(settings)
                    try reg.publish(name: "sb", version: "v\(i)", config: Array("{\"files\":[],\"n\":\(i)}".utf8))
                }
            }
            try await group.waitForAll()
        }
        let reg = try makeRegistry(settings)
        for i in 0..<16 {
            #expect(try reg.fetch(name: "sb", version: "v\(i)") == Array("{\"files\":[],\"n\":\(i)}".utf8))
        }
    }
}
