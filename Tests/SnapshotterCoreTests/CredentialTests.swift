import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

@Suite("Where credentials may go")
struct CredentialRuleTests {
    @Test("Origins: scheme, host and port; default ports; userinfo ignored; non-http refused")
    func origins() {
        #expect(URLOrigin("http://127.0.0.1:5000/v2/") == URLOrigin("http://127.0.0.1:5000"))
        #expect(URLOrigin("http://127.0.0.1:5000") != URLOrigin("http://127.0.0.1:5001"))
        #expect(URLOrigin("http://host") != URLOrigin("https://host"))
        #expect(URLOrigin("https://Host:443/x") == URLOrigin("https://host"))
        #expect(URLOrigin("http://u:p@host:80/x") == URLOrigin("http://host"))
        #expect(URLOrigin("http://[::1]:8080/x")?.host == "[::1]")
        #expect(URLOrigin("http://[::1]:8080/x")?.port == 8080)
        for bad in ["file:///etc/passwd", "ftp://host/", "gopher://h", "http://", "http://host:99999/", "http://host:x/", "host:80"] {
            #expect(URLOrigin(bad) == nil, "\(bad)")
        }
    }

    @Test("A redirect to another origin loses the credential headers; to the same origin keeps them; non-http is refused")
    func redirects() throws {
        let req = HTTPRequest(url: "http://127.0.0.1:5000/v2/r/blobs/x",
                              headers: ["Authorization: Basic Ym9iOnB3", "Accept: */*", "x-amz-security-token: t", "cookie: c"])
        let away = try HTTPRedirect.follow(req, to: "http://127.0.0.1:5001/blob", status: 307)
        #expect(away.headers == ["Accept: */*"])
        #expect(away.url == "http://127.0.0.1:5001/blob")
        let down = try HTTPRedirect.follow(HTTPRequest(url: "https://h/x", headers: ["authorization: Bearer t"]), to: "http://h/x", status: 302)
        #expect(down.headers.isEmpty)
        let same = try HTTPRedirect.follow(req, to: "http://127.0.0.1:5000/elsewhere", status: 307)
        #expect(same.headers == req.headers)
        let post = try HTTPRedirect.follow(HTTPRequest(method: "POST", url: "http://h/a", body: [1]), to: "http://h/b", status: 303)
        #expect(post.method == "GET" && post.body == nil)
        #expect(throws: HTTPTransportError.self) { _ = try HTTPRedirect.follow(req, to: "file:///etc/passwd", status: 307) }
    }

    @Test("libcurl speaks only http and https: file:// and other schemes are refused, nothing is read")
    func protocolsLimited() throws {
        let pool = CurlPool()
        for url in ["file:///etc/hostname", "dict://127.0.0.1:9/", "gopher://127.0.0.1:9/"] {
            #expect(throws: HTTPTransportError.self, "\(url)") { _ = try pool.perform(HTTPRequest(url: url), HTTPSettings()) }
        }
    }

    @Test("Redaction: userinfo and secret query values go; the rest stays")
    func redaction() {
        #expect(Redact.text("fetch a:v from http://bob:hunter2@reg:5000/v2/x failed") == "fetch a:v from http://***@reg:5000/v2/x failed")
        #expect(Redact.text("\"https://tok@h/\"") == "\"https://***@h/\"")
        let s3 = Redact.text("GET http://h/b/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc123&x-id=GetObject#f")
        #expect(s3 == "GET http://h/b/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=***&X-Amz-Signature=***&x-id=GetObject#f")
        #expect(Redact.text("realm https://auth/token?service=s&access_token=zzz&token=yyy end")
                == "realm https://auth/token?service=s&access_token=***&token=*** end")
        #expect(Redact.text("s3://snapshots@http://127.0.0.1:9000") == "s3://snapshots@http://127.0.0.1:9000")
        #expect(Redact.text("s3://snapshots@http://k:s@127.0.0.1:9000/x") == "s3://snapshots@http://***@127.0.0.1:9000/x")
        #expect(Redact.text("restore a:v: file ckpt/mem (4 bytes) is corrupt") == "restore a:v: file ckpt/mem (4 bytes) is corrupt")
        #expect(SnapshotterError(.registry, "at http://u:pw@h/").message == "at http://***@h/")
    }

    @Test("An endpoint with userinfo: the password is in no error")
    func endpointPasswordNotEchoed() async throws {
        let fx = try RegistryFixture()
        defer { fx.cleanup() }
        // Nothing listens on port 9 of 127.0.0.1: the request fails.
        var settings = RegistrySettings(endpoint: "http://bob:s3cr3t-pw@127.0.0.1:9/")
        settings.retries = 0
        let store = try fx.open("a", registry: settings)
        do {
            _ = try await store.inspectRemote(name: "sb", version: "v1")
            Issue.record("inspect succeeded")
        } catch let e as SnapshotterError {
            #expect(e.message.contains("127.0.0.1:9"), "\(e.message)")
            #expect(!e.message.contains("s3cr3t-pw"), "\(e.message)")
        }
        await #expect { _ = try await store.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: fx.src, files: fx.files)) } throws: { e in
            let m = (e as? SnapshotterError)?.message ?? ""
            #expect(m.contains("127.0.0.1:9") && !m.contains("s3cr3t-pw"), "\(m)")
            return true
        }
    }
}


@Suite("Credentials against hostile registries", .serialized, .enabled(if: RegistryServices.available, "set SNAPSHOTTER_TEST_SERVICES (scripts/test.sh does)"))
struct CredentialServiceTests {
    struct Recorded: Decodable {
        var method: String
        var path: String
        var authorization: String?
        var cookie: String?
        var amzSecurityToken: String?

        enum CodingKeys: String, CodingKey {
            case method, path, authorization, cookie
            case amzSecurityToken = "x-amz-security-token"
        }
    }

    static func recorded() throws -> [Recorded] {
        try JSONDecoder().decode([Recorded].self, from: RegistryServices.curl([try RegistryServices.value("REGISTRY_HOSTILE_RECORDER") + "/recorded"]))
    }

    static func resetRecorder() throws {
        _ = try RegistryServices.curl(["-X", "POST", try RegistryServices.value("REGISTRY_HOSTILE_RECORDER") + "/recorded/reset"])
    }

    func settings() throws -> RegistrySettings {
        var s = RegistrySettings(endpoint: try RegistryServices.value("REGISTRY_HOSTILE"), username: "bob", password: "bobs-password")
        s.retries = 0
        return s
    }

    @Test("A publish to an endpoint with userinfo logs where it went, without the password")
    func publishLogRedacted() async throws {
        let fx = try RegistryFixture()
        defer { fx.cleanup() }
        let plain = try RegistryServices.value("REGISTRY_PLAIN")
        let endpoint = plain.replacingOccurrences(of: "http://", with: "http://bob:s3cr3t-pw@")
        let store = try fx.open("a", registry: RegistrySettings(endpoint: endpoint, namespace: "cred"))
        let lines = Locked<[String]>([])
        try await LogTap.listen({ m, _ in if m.contains("cred/sb:v1") { lines.withLock { $0.append(m) } } }) {
            _ = try await store.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: fx.src, files: fx.files))
        }
        let logged = lines.withLock { Array($0) }
        #expect(logged.contains { $0.hasPrefix("published cred/sb:v1 to http://***@127.0.0.1:") }, "\(logged)")
        #expect(!logged.contains { $0.contains("s3cr3t-pw") }, "\(logged)")
    }

    @Test("A plain-http realm on another origin gets no credentials: the token is asked for anonymously")
    func foreignRealm() async throws {
        let fx = try RegistryFixture()
        defer { fx.cleanup() }
        try Self.resetRecorder()
        let store = try fx.open("a", registry: try settings())
        #expect(try await store.inspectRemote(name: "foreignrealm", version: "v1").files.map(\.relativePath) == ["ckpt1/state"])
        let seen = try Self.recorded()
        #expect(seen.contains { $0.path.hasPrefix("/token?") }, "\(seen.map(\.path))")
        #expect(seen.allSatisfy { $0.authorization == nil }, "\(seen.map { "\($0.path) \($0.authorization ?? "-")" })")
    }

    @Test("A file:// realm is refused before anything is read; the error holds none of the file")
    func fileRealm() async throws {
        let fx = try RegistryFixture()
        defer { fx.cleanup() }
        let secret = try String(contentsOfFile: try RegistryServices.value("REGISTRY_HOSTILE_REALM_SECRET"), encoding: .utf8)
            .trimmingCharacters(in: "\n")
        #expect(secret.hasPrefix("hostile-realm-secret-"))
        let store = try fx.open("a", registry: try settings())
        await #expect { _ = try await store.inspectRemote(name: "filerealm", version: "v1") } throws: { e in
            guard let e = e as? SnapshotterError else { return false }
            #expect(!e.message.contains(secret), "\(e.message)")
            #expect(e.message.contains("not an http(s) URL"), "\(e.message)")
            return e.code == .registry
        }
    }

    @Test("Object storage's redirect to another origin carries neither the signature nor the session token there")
    func s3RedirectToAnotherOrigin() throws {
        try Self.resetRecorder()
        var c = ContentSettings(url: "s3://s3redirect")
        c.endpoint = try RegistryServices.value("REGISTRY_HOSTILE")
        c.accessKeyID = "AKIDEXAMPLE"
        c.secretAccessKey = "secret-key"
        c.sessionToken = "session-token-secret"
        c.retries = 0
        let s3 = try S3Transport(c)
        _ = try? s3.has(Digest(42))
        let seen = try Self.recorded()
        #expect(seen.contains { $0.path.hasPrefix("/s3/s3redirect/") }, "\(seen.map(\.path))")
        #expect(seen.allSatisfy { $0.authorization == nil && $0.amzSecurityToken == nil },
                "\(seen.map { "\($0.path) \($0.authorization ?? "-") \($0.amzSecurityToken ?? "-")" })")
    }

    @Test("A registry's redirect to another origin carries no Authorization there")
    func redirectToAnotherOrigin() async throws {
        let fx = try RegistryFixture()
        defer { fx.cleanup() }
        try Self.resetRecorder()
        let store = try fx.open("a", registry: try settings())
        #expect(try await store.inspectRemote(name: "redirect", version: "v1").files.map(\.relativePath) == ["ckpt1/state"])
        let seen = try Self.recorded()
        #expect(seen.contains { $0.path.hasPrefix("/blob/sha256:") }, "\(seen.map(\.path))")
        #expect(seen.allSatisfy { $0.authorization == nil }, "\(seen.map { "\($0.path) \($0.authorization ?? "-")" })")
    }
}
