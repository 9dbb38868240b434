import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// A client of the OCI distribution API over libcurl: anonymous, Basic and
/// Bearer-token authentication, retries with backoff, size limits while
/// streaming, and every pulled blob checked against its sha256.
package final class DistributionRegistry: MetadataRegistry {
    package let settings: RegistrySettings
    package let base: String
    package let origin: String
    /// Where the registry's credentials may go (URLOrigin).
    private let registryOrigin: URLOrigin
    private let http: HTTPSettings
    private let pool = CurlPool()
    private let retry: RetryPolicy
    private let auth = Locked(AuthState())

    private struct AuthState {
        /// The registry asked for Basic credentials.
        var basic = false
        /// Bearer tokens by scope, with their expiry (monotonic ns).
        var tokens: [String: (token: String, expires: UInt64)] = [:]
        /// The scope last granted for each repository.
        var scopeForRepository: [String: String] = [:]
    }

    package var endpointDescription: String { Redact.text(base) }

    package init(_ settings: RegistrySettings) throws {
        self.settings = settings
        var b = settings.endpoint
        while b.hasSuffix("/") { b.removeLast() }
        base = b
        let scheme = b.hasPrefix("https://") ? "https://" : "http://"
        let schemeEnd = b.index(b.startIndex, offsetBy: min(scheme.count, b.count))
        let hostEnd = b[schemeEnd...].firstIndex(of: "/") ?? b.endIndex
        origin = String(b[..<hostEnd])
        guard schemeEnd < hostEnd, let ro = URLOrigin(b) else {
            throw SnapshotterError.invalid("registry endpoint \(settings.endpoint.debugDescription) has no host")
        }
        registryOrigin = ro
        var h = HTTPSettings()
        h.insecure = settings.insecure
        h.caFile = settings.caFile
        h.connectTimeoutMs = Int.clamped(settings.connectTimeoutSeconds * 1000, 0, 86_400_000)
        h.stallTimeoutSeconds = Int.clamped(settings.stallTimeoutSeconds, 1, 86_400)
        http = h
        retry = .registry(retries: settings.retries, backoffMilliseconds: settings.backoffMilliseconds)
        if let ca = settings.caFile, (try Sys.lstatIfExists(ca)) == nil {
            throw SnapshotterError.invalid("registry CA file \(ca) does not exist")
        }
    }

    // MARK: publish and fetch

    package func publish(name: String, version: String, config: [UInt8], cancel: CancellationFlag?) throws {
        let repo = settings.repository(name)
        let what = "publish \(repo):\(version) to \(base)"
        try settings.checkConfigSize(config.count, what: what)
        let digest = SHA256.digest(config)
        let head = try send(HTTPRequest(method: "HEAD", url: "\(base)/v2/\(repo)/blobs/\(digest)"), repo: repo, what: what, push: true, cancel: cancel)
        if head.status == 404 {
            let start = try send(HTTPRequest(method: "POST", url: "\(base)/v2/\(repo)/blobs/uploads/", body: []),
                                 repo: repo, what: what, push: true, cancel: cancel)
            guard start.status == 202, let location = start.header("location") else {
                throw failure(start, what: "\(what): starting the config upload")
            }
            var url = location.hasPrefix("http://") || location.hasPrefix("https://") ? location : origin + location
            url += (url.contains("?") ? "&" : "?") + "digest=" + percentEncode(digest)
            let put = try send(HTTPRequest(method: "PUT", url: url, headers: ["Content-Type: application/octet-stream"], body: config),
                               repo: repo, what: what, push: true, cancel: cancel)
            guard put.status == 201 || put.status == 204 else { throw failure(put, what: "\(what): uploading the config") }
        } else if head.status != 200 {
            throw failure(head, what: "\(what): checking for the config blob")
        }
        let manifest = SnapshotArtifact.manifest(config: config)
        let put = try send(HTTPRequest(method: "PUT", url: "\(base)/v2/\(repo)/manifests/\(version)",
                                       headers: ["Content-Type: \(SnapshotArtifact.manifestMediaType)"], body: manifest),
                           repo: repo, what: what, push: true, cancel: cancel)
        guard put.status == 201 || put.status == 200 || put.status == 204 else {
            throw failure(put, what: "\(what): pushing the manifest")
        }
        Log.info("published \(repo):\(version) to \(base) (config \(digest))")
    }

    package func fetch(name: String, version: String, cancel: CancellationFlag?) throws -> [UInt8] {
        let repo = settings.repository(name)
        let what = "fetch \(repo):\(version) from \(base)"
        let limit = settings.maxConfigBytes
        let m = try send(HTTPRequest(url: "\(base)/v2/\(repo)/manifests/\(version)",
                                     headers: ["Accept: \(SnapshotArtifact.manifestMediaType)"],
                                     maxResponseBytes: RegistrySettings.maxManifestBytes),
                         repo: repo, what: what, cancel: cancel)
        if m.status == 404 { throw SnapshotterError(.notFound, "\(what): no such snapshot in the registry\(errorDetail(m))") }
        guard m.status == 200 else { throw failure(m, what: "\(what): pulling the manifest") }
        if let ct = m.header("content-type"), !ct.isEmpty, !ct.hasPrefix(SnapshotArtifact.manifestMediaType) {
            throw SnapshotterError(.registry, "\(what): manifest content type \(ct) is not \(SnapshotArtifact.manifestMediaType)")
        }
        let desc = try SnapshotArtifact.parseManifest(m.body, what: what)
        guard desc.size <= limit else {
            throw SnapshotterError(.registry, "\(what): config of \(desc.size) bytes exceeds the limit of \(limit) bytes (max config bytes)")
        }
        let c = try send(HTTPRequest(url: "\(base)/v2/\(repo)/blobs/\(desc.digest)", maxResponseBytes: desc.size, reserveBytes: desc.size),
                         repo: repo, what: what, cancel: cancel)
        guard c.status == 200 else { throw failure(c, what: "\(what): pulling the config \(desc.digest)") }
        let actual = SHA256.digest(c.body)
        guard c.body.count == desc.size, actual == desc.digest else {
            throw SnapshotterError(.registry, "\(what): config blob does not match its digest (expected \(desc.digest), \(desc.size) bytes; got \(actual), \(c.body.count) bytes)")
        }
        return c.body
    }

    // MARK: requests, retries and authentication

    /// Sends a request with authentication, retrying per `retry`; a 401
    /// is answered once (Basic or a Bearer token for the challenged scope).
    package func send(_ request: HTTPRequest, repo: String, what: String, push: Bool = false,
              cancel: CancellationFlag? = nil) throws -> HTTPResponse {
        var attempts = RetryAttempts(retry)
        var authRetried = false
        while true {
            let response: HTTPResponse
            do {
                response = try pool.perform(http, &attempts) { try authorized(request, repo: repo, cancel: cancel) }
            } catch let e as HTTPTransportError {
                if e.tooLarge { throw SnapshotterError(.registry, "\(what): \(e.message)") }
                if e.aborted { throw SnapshotterError.canceled }
                throw SnapshotterError(.registry, "\(what): \(base) cannot be reached: \(e.message)")
            }
            if response.status == 401 && !authRetried {
                authRetried = true
                if try authenticate(challenge: response.header("www-authenticate"), repo: repo, what: what, push: push) { continue }
            }
            return response
        }
    }

    /// The request as one attempt sends it: with the credentials we hold
    /// when it goes to the registry's origin (an upload Location elsewhere
    /// gets none), abortable by `cancel`.
    private func authorized(_ request: HTTPRequest, repo: String, cancel: CancellationFlag?) throws -> HTTPRequest {
        try cancel?.check()
        var req = request
        if URLOrigin(req.url) == registryOrigin, let h = authorizationHeader(repo: repo) { req.headers.append(h) }
        if let cancel { req.shouldAbort = { cancel.isCanceled } }
        return req
    }

    private func authorizationHeader(repo: String) -> String? {
        auth.withLock { s in
            if let scope = s.scopeForRepository[repo], let t = s.tokens[scope], t.expires > Sys.monotonicNanos() {
                return "Authorization: Bearer \(t.token)"
            }
            if s.basic, let u = settings.username {
                return "Authorization: Basic " + Base64.encode(Array("\(u):\(settings.password ?? "")".utf8))
            }
            return nil
        }
    }

    /// Handles a 401 challenge; returns whether the request should be sent
    /// again.
    private func authenticate(challenge: String?, repo: String, what: String, push: Bool) throws -> Bool {
        guard let challenge, let c = AuthChallenge.parse(challenge) else { return false }
        switch c.scheme {
        case "basic":
            guard settings.username != nil else { return false }
            auth.withLock { $0.basic = true }
            return true
        case "bearer":
            guard let realm = c.params["realm"] else { return false }
            // A publish asks for push up front, so the token from the first
            // challenge (often a pull-only HEAD) serves the whole push; the
            // registry sends actions in either order, so they are sorted.
            var scope = Self.normalizeScope(c.params["scope"] ?? "repository:\(repo):pull")
            if push && scope == "repository:\(repo):pull" { scope = "repository:\(repo):pull,push" }
            let token = try fetchToken(realm: realm, service: c.params["service"], scope: scope, what: what)
            auth.withLock {
                $0.tokens[scope] = token
                $0.scopeForRepository[repo] = scope
            }
            return true
        default:
            return false
        }
    }

    /// `repository:R:push,pull` -> `repository:R:pull,push`, per scope.
    package static func normalizeScope(_ scope: String) -> String {
        scope.split(separator: " ").map { part -> String in
            guard let last = part.lastIndex(of: ":") else { return String(part) }
            let actions = part[part.index(after: last)...].split(separator: ",").map(String.init).sorted()
            return part[...last] + actions.joined(separator: ",")
        }.joined(separator: " ")
    }

    private func fetchToken(realm: String, service: String?, scope: String, what: String) throws -> (token: String, expires: UInt64) {
        let withheld = try realmMayNotHaveCredentials(realm, what: what)
        var url = realm + (realm.contains("?") ? "&" : "?")
        var query: [String] = []
        if let service { query.append("service=" + percentEncode(service)) }
        for s in scope.split(separator: " ") { query.append("scope=" + percentEncode(String(s))) }
        url += query.joined(separator: "&")
        var req = HTTPRequest(url: url, maxResponseBytes: 1 << 20)
        if let u = settings.username, !withheld {
            req.headers.append("Authorization: Basic " + Base64.encode(Array("\(u):\(settings.password ?? "")".utf8)))
        }
        var attempts = RetryAttempts(retry)
        let r: HTTPResponse
        do {
            r = try pool.perform(http, &attempts) { req }
        } catch let e as HTTPTransportError {
            throw SnapshotterError(.registry, "\(what): the token service cannot be reached: \(e.message)")
        }
        guard r.status == 200 else {
            let note = withheld ? " (the credentials were withheld: the realm is plain http on another origin than the registry)" : ""
            throw SnapshotterError(.registry, "\(what): the token service refused \(scope) (\(r.status))\(errorDetail(r))\(note)")
        }
        guard let json = try? JSONValue.parse(r.body),
              let token = json["token"]?.stringValue ?? json["access_token"]?.stringValue, !token.isEmpty else {
            throw SnapshotterError(.registry, "\(what): the token service answered without a token")
        }
        let ttl = Self.tokenLifetime(json["expires_in"])
        return (token, Sys.monotonicNanos() + UInt64(ttl - 5) * 1_000_000_000)
    }

    /// The realm rule: the user's credentials go to the registry's own
    /// origin or to an https realm, never over plain http to another origin
    /// (there the token is asked for anonymously: true). A realm that is
    /// not http(s) is refused before anything is fetched.
    private func realmMayNotHaveCredentials(_ realm: String, what: String) throws -> Bool {
        guard let o = URLOrigin(realm) else {
            throw SnapshotterError(.registry, "\(what): the registry named a token realm that is not an http(s) URL (\(Redact.text(realm).debugDescription)); refused")
        }
        guard settings.username != nil, o != registryOrigin, !o.isHTTPS else { return false }
        Log.warn("\(what): not sending the credentials to the plain-http token realm \(Redact.text(realm)) on another origin; asking for an anonymous token")
        return true
    }

    /// A token's lifetime in seconds: `expires_in` (any JSON number)
    /// clamped to 10 s...1 day, 60 s when absent or not a number (the
    /// token spec's default). A hostile or mistaken huge value only makes
    /// us ask for a new token after a day.
    package static func tokenLifetime(_ expiresIn: JSONValue?) -> Int64 {
        guard let v = expiresIn?.doubleValue, !v.isNaN else { return 60 }
        return Int64(Swift.min(Swift.max(v, 10), 86_400))
    }

    /// A clear error for an unexpected status, with the registry's own
    /// message.
    package func failure(_ r: HTTPResponse, what: String) -> SnapshotterError {
        let kind: String
        switch r.status {
        case 401: kind = "unauthorized"
        case 403: kind = "forbidden"
        case 404: kind = "not found"
        case 400: kind = "rejected as invalid"
        default: kind = "unexpected status"
        }
        return SnapshotterError(r.status == 404 ? .notFound : .registry, "\(what): \(kind) (\(r.status))\(errorDetail(r))")
    }

    /// `: CODE: message` from an OCI error body, or nothing.
    package func errorDetail(_ r: HTTPResponse) -> String {
        guard let json = try? JSONValue.parse(r.body), let errors = json["errors"]?.arrayValue, !errors.isEmpty else { return "" }
        let parts = errors.prefix(3).map { e -> String in
            let code = e["code"]?.stringValue ?? "ERROR"
            let message = e["message"]?.stringValue ?? ""
            return message.isEmpty ? code : "\(code): \(message)"
        }
        return ": " + parts.joined(separator: "; ")
    }
}
