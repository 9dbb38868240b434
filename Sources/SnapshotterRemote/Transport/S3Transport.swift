#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// S3-compatible object storage over libcurl with AWS Signature V4:
/// single PUTs below the multipart threshold, multipart above it, and
/// downloads that resume with a Range request after a dropped connection.
/// Objects are `<bucket>/xxh3/<hex>`, addressed path-style.
package final class S3Transport: ContentTransport {
    package let settings: ContentSettings
    private let base: String
    private let host: String
    private let bucket: String
    private let pool = CurlPool()
    private let http: HTTPSettings
    private let retry: RetryPolicy

    package var remoteID: String { "s3://\(bucket)@\(base)" }

    package init(_ settings: ContentSettings) throws {
        self.settings = settings
        bucket = settings.bucket
        guard !bucket.isEmpty else { throw SnapshotterError.invalid("content URL \(settings.url.debugDescription) names no bucket") }
        var endpoint = settings.endpoint.isEmpty ? "https://s3.\(settings.region).amazonaws.com" : settings.endpoint
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        // A bare host[:port] (as the Go snapshotter takes it) means https.
        if !endpoint.contains("://") { endpoint = "https://" + endpoint }
        guard endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") else {
            throw SnapshotterError.invalid("object storage endpoint \(endpoint.debugDescription) must be host[:port], http://host[:port] or https://host[:port]")
        }
        base = endpoint
        let https = endpoint.hasPrefix("https://")
        var authority = String(endpoint.dropFirst(https ? 8 : 7))
        if let slash = authority.firstIndex(of: "/") { authority = String(authority[..<slash]) }
        if (https && authority.hasSuffix(":443")) || (!https && authority.hasSuffix(":80")) {
            authority = String(authority[..<authority.lastIndex(of: ":")!])
        }
        host = authority
        guard !settings.accessKeyID.isEmpty, !settings.secretAccessKey.isEmpty else {
            throw SnapshotterError.invalid("object storage needs an access key id and a secret access key")
        }
        // S3 allows 10,000 parts of 5 MiB..5 GiB; a part size of 0 would never end.
        guard (5 << 20 ... 5 << 30).contains(settings.partSize) else {
            throw SnapshotterError.invalid("object storage part size \(settings.partSize) is not 5 MiB..5 GiB")
        }
        var h = HTTPSettings()
        h.connectTimeoutMs = Int.clamped(settings.connectTimeoutSeconds * 1000, 0, 86_400_000)
        h.stallTimeoutSeconds = Int.clamped(settings.stallTimeoutSeconds, 1, 86_400)
        h.totalTimeoutMs = 0
        http = h
        retry = .objectStorage(retries: settings.retries)
    }

    private func key(_ d: Digest) -> String { "xxh3/" + d.hex }

    // MARK: the three operations

    package func has(_ digest: Digest) throws -> Bool {
        let r = try send("HEAD", key: key(digest), what: "check \(digest) in \(remoteID)")
        switch r.status {
        case 200: return true
        case 404: return false
        default: throw failure(r, what: "check \(digest) in \(remoteID)")
        }
    }

    package func upload(_ digest: Digest, path: String, cancel: CancellationFlag) throws {
        let what = "upload \(digest) to \(remoteID)"
        if try has(digest) { return }
        let fd = try Sys.open(path, O_RDONLY)
        defer { Sys.close(fd) }
        let size = Int64(try Sys.fstat(fd, path).st_size)
        if size < settings.multipartThreshold {
            let r = try send("PUT", key: key(digest), what: what, extra: ["Content-Type: application/octet-stream"],
                             uploadFile: (fd, 0, size), cancel: cancel)
            guard r.status == 200 else { throw failure(r, what: what) }
            return
        }
        try multipartUpload(digest, fd: fd, size: size, what: what, cancel: cancel)
    }

    private func multipartUpload(_ digest: Digest, fd: Int32, size: Int64, what: String, cancel: CancellationFlag) throws {
        let start = try send("POST", key: key(digest), query: [("uploads", "")], what: what, body: [])
        guard start.status == 200, let uploadID = Self.xmlValue(start.body, "UploadId") else { throw failure(start, what: "\(what): starting a multipart upload") }
        var etags: [String] = []
        do {
            var offset: Int64 = 0
            var part = 1
            while offset < size {
                try cancel.check()
                let length = min(settings.partSize, size - offset)
                let r = try send("PUT", key: key(digest), query: [("partNumber", "\(part)"), ("uploadId", uploadID)], what: what,
                                 uploadFile: (fd, offset, length), cancel: cancel)
                guard r.status == 200, let etag = r.header("etag") else { throw failure(r, what: "\(what): part \(part)") }
                etags.append(etag)
                offset += length
                part += 1
            }
            var xml = "<CompleteMultipartUpload>"
            for (i, e) in etags.enumerated() { xml += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\(e)</ETag></Part>" }
            xml += "</CompleteMultipartUpload>"
            let done = try send("POST", key: key(digest), query: [("uploadId", uploadID)], what: what,
                                extra: ["Content-Type: application/xml"], body: Array(xml.utf8))
            guard done.status == 200, Self.xmlValue(done.body, "Code") == nil else { throw failure(done, what: "\(what): completing the upload") }
        } catch {
            _ = try? send("DELETE", key: key(digest), query: [("uploadId", uploadID)], what: what)
            throw error
        }
    }

    package func download(_ digest: Digest, into fd: Int32, tempPath: String, cancel: CancellationFlag,
                  tap: DownloadTap?, onBytes: @escaping (Int64) -> Void) throws -> DownloadedFile {
        let what = "download \(digest) from \(remoteID)"
        var have: Int64 = 0
        var attempts = RetryAttempts(retry)
        while true {
            try cancel.check()
            var req = try signedRequest("GET", key: key(digest), query: [], extra: have > 0 ? ["Range: bytes=\(have)-"] : [])
            req.downloadFile = (fd, have)
            if let tap { req.onData = { tap.received($0, at: $1) } }
            req.maxResponseBytes = 64 << 10
            req.onBytes = { n in
                onBytes(n)
                return !cancel.isCanceled
            }
            req.shouldAbort = { cancel.isCanceled }
            do {
                let r = try pool.perform(req, http)
                if r.status == 404 { throw SnapshotterError(.notFound, "\(what): no such object") }
                if attempts.retry(after: r.status) { continue }
                guard r.status == 200 || (have > 0 && r.status == 206) else { throw failure(r, what: what) }
                return .written
            } catch let e as HTTPTransportError {
                if e.aborted { throw SnapshotterError.canceled }
                if e.rangeIgnored, attempts.next(waiting: false) {
                    // Start again from the first byte.
                    have = 0
                    try Sys.ftruncate(fd, 0, tempPath)
                    continue
                }
                have += e.bytesWritten
                if e.retryable, attempts.next() {
                    Log.info("\(what): connection dropped after \(have) bytes (\(e.message)); resuming")
                    continue
                }
                throw SnapshotterError(.transport, "\(what): \(e.message)")
            }
        }
    }

    // MARK: requests

    /// Sends a signed request (signed again for each attempt), retrying per
    /// `retry`.
    private func send(_ method: String, key: String, query: [(String, String)] = [], what: String, extra: [String] = [],
                      body: [UInt8]? = nil, uploadFile: (fd: Int32, offset: Int64, length: Int64)? = nil,
                      cancel: CancellationFlag? = nil) throws -> HTTPResponse {
        var attempts = RetryAttempts(retry)
        do {
            return try pool.perform(http, &attempts) {
                var req = try signedRequest(method, key: key, query: query, extra: extra)
                req.body = body ?? (method == "PUT" || method == "POST" ? [] : nil)
                req.uploadFile = uploadFile
                req.maxResponseBytes = 1 << 20
                if let cancel {
                    req.onBytes = { _ in !cancel.isCanceled }
                    req.shouldAbort = { cancel.isCanceled }
                }
                return req
            }
        } catch let e as HTTPTransportError {
            if e.aborted { throw SnapshotterError.canceled }
            throw SnapshotterError(.transport, "\(what): \(base) cannot be reached: \(e.message)")
        }
    }

    /// An AWS Signature V4 request (payload unsigned, as S3 allows).
    private func signedRequest(_ method: String, key: String, query: [(String, String)], extra: [String]) throws -> HTTPRequest {
        var t = time(nil)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let date = "\(tmv.tm_year + 1900)\(two(tmv.tm_mon + 1))\(two(tmv.tm_mday))"
        let amzDate = "\(date)T\(two(tmv.tm_hour))\(two(tmv.tm_min))\(two(tmv.tm_sec))Z"
        let payload = "UNSIGNED-PAYLOAD"
        let path = "/" + ([bucket] + key.split(separator: "/").map(String.init)).map(percentEncode).joined(separator: "/")
        let canonicalQuery = query.map { (percentEncode($0.0), percentEncode($0.1)) }.sorted { $0.0 < $1.0 }
            .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        var signed: [(String, String)] = [("host", host), ("x-amz-content-sha256", payload), ("x-amz-date", amzDate)]
        if !settings.sessionToken.isEmpty { signed.append(("x-amz-security-token", settings.sessionToken)) }
        let canonicalHeaders = signed.map { "\($0.0):\($0.1)\n" }.joined()
        let signedHeaders = signed.map(\.0).joined(separator: ";")
        let canonicalRequest = [method, path, canonicalQuery, canonicalHeaders, signedHeaders, payload].joined(separator: "\n")
        let scope = "\(date)/\(settings.region)/s3/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n" + SHA256.hex(SHA256.hash(Array(canonicalRequest.utf8)))
        var k = SHA256.hmac(key: Array("AWS4\(settings.secretAccessKey)".utf8), Array(date.utf8))
        k = SHA256.hmac(key: k, Array(settings.region.utf8))
        k = SHA256.hmac(key: k, Array("s3".utf8))
        k = SHA256.hmac(key: k, Array("aws4_request".utf8))
        let signature = SHA256.hex(SHA256.hmac(key: k, Array(stringToSign.utf8)))
        var headers = ["x-amz-content-sha256: \(payload)", "x-amz-date: \(amzDate)",
                       "Authorization: AWS4-HMAC-SHA256 Credential=\(settings.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"]
        if !settings.sessionToken.isEmpty { headers.append("x-amz-security-token: \(settings.sessionToken)") }
        let url = base + path + (canonicalQuery.isEmpty ? "" : "?" + canonicalQuery)
        return HTTPRequest(method: method, url: url, headers: headers + extra)
    }

    /// A clear error with S3's own code and message (never the secret).
    private func failure(_ r: HTTPResponse, what: String) -> SnapshotterError {
        let code = Self.xmlValue(r.body, "Code")
        let message = Self.xmlValue(r.body, "Message")
        var detail = code.map { ": \($0)" } ?? ""
        if let message { detail += " (\(message))" }
        if code == nil && r.status == 403 { detail = ": the credentials were refused (access key, secret or signature)" }
        let kind = r.status == 403 ? "access denied" : r.status == 404 ? "not found" : "unexpected status"
        return SnapshotterError(r.status == 404 ? .notFound : .transport, "\(what): \(kind) (\(r.status))\(detail)")
    }

    /// The text of the first `<tag>` element of an S3 XML answer.
    package static func xmlValue(_ body: [UInt8], _ tag: String) -> String? {
        let text = String(decoding: body, as: UTF8.self)
        guard let open = text.firstRange(of: "<\(tag)>"),
              let close = text[open.upperBound...].firstRange(of: "</\(tag)>") else { return nil }
        return String(text[open.upperBound..<close.lowerBound])
    }
}
