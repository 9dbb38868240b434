import CCurl
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One HTTP exchange over libcurl.
struct HTTPRequest: @unchecked Sendable {
    var method = "GET"
    var url: String
    var headers: [String] = []
    var body: [UInt8]? = nil
    /// Responses larger than this are refused while streaming.
    var maxResponseBytes = 8 << 20
    /// The body's expected size: reserved up front so a large body is not
    /// copied as it grows.
    var reserveBytes = 0
    /// Upload `length` bytes of this file from `offset` instead of `body`.
    var uploadFile: (fd: Int32, offset: Int64, length: Int64)? = nil
    /// Write a 2xx response body into this file from `offset`.
    var downloadFile: (fd: Int32, offset: Int64)? = nil
    /// Told of every body byte moved (up or down); false aborts the
    /// transfer (cancellation).
    var onBytes: ((Int64) -> Bool)? = nil
    /// Sees each body byte as it is written to `downloadFile`, with the
    /// file offset it went to (called from the transfer's thread).
    var onData: ((UnsafeRawBufferPointer, Int64) -> Void)? = nil
    /// Asked about once a second, and on every transfer event, even while
    /// nothing moves: true aborts (a canceled operation does not wait for
    /// a stalled server's timeout).
    var shouldAbort: (@Sendable () -> Bool)? = nil
    /// Takes the whole response body as it arrives (any status), instead
    /// of it being gathered or written to a file; false aborts.
    var onBody: ((UnsafeRawBufferPointer) -> Bool)? = nil
    /// Connect through this Unix socket instead of the URL's host.
    var unixSocketPath: String? = nil
    /// HTTP/2 without negotiation (cleartext h2, as gRPC speaks it).
    var http2PriorKnowledge = false
    /// 3xx answers are followed (checked hop by hop) unless this is false.
    var followRedirects = true
    /// A new connection, closed after the exchange.
    var freshConnection = false
}

struct HTTPResponse: Sendable {
    var status: Int
    /// Header names lowercased; later values win.
    var headers: [String: String]
    var body: [UInt8]
    /// The URL after redirects.
    var effectiveURL: String

    func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// Transport-level failures (no HTTP status), with whether a retry may help.
struct HTTPTransportError: Error {
    var message: String
    var retryable: Bool
    var tooLarge: Bool
    var aborted = false
    /// Body bytes written to the download file before the failure.
    var bytesWritten: Int64 = 0
    /// The server answered a download that starts past 0 (a resumed one)
    /// with the whole body instead of the range; nothing was written.
    var rangeIgnored = false
    /// The connect, total or stall timeout ended it.
    var timedOut = false
}

/// TLS and timeout settings shared by the requests of one client.
struct HTTPSettings: Sendable {
    var insecure = false
    var caFile: String?
    var connectTimeoutMs = 10_000
    /// A transfer that moves less than one byte a second for this long
    /// fails (a registry that stops answering); 0: no such limit.
    var stallTimeoutSeconds = 30
    var totalTimeoutMs = 300_000
}

/// libcurl's global state is initialised once, before any handle exists.
enum CurlGlobal {
    static let ready: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
}

/// A pool of easy handles: each request takes one, so connections and TLS
/// sessions are reused across calls without sharing a handle between
/// threads.
final class CurlPool: Sendable {
    private let idle = Locked<[CurlEasy]>([])

    func perform(_ request: HTTPRequest, _ settings: HTTPSettings) throws -> HTTPResponse {
        let easy = try idle.withLock { $0.popLast() } ?? CurlEasy()
        defer { idle.withLock { if $0.count < 8 { $0.append(easy) } } }
        return try easy.perform(request, settings)
    }
}

final class CurlEasy: @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer

    init() throws {
        guard CurlGlobal.ready, let h = curl_easy_init() else {
            throw SnapshotterError(.internal, "libcurl could not be initialised")
        }
        handle = h
    }

    deinit { curl_easy_cleanup(handle) }

    /// Per-transfer state the C callbacks reach through their userdata.
    final class Exchange {
        var body: [UInt8] = []
        var headers: [String: String] = [:]
        var status = 0
        var limit: Int
        var tooLarge = false
        var aborted = false
        var writeFailed = false
        var upload: [UInt8]
        var uploaded = 0
        var source: (fd: Int32, offset: Int64, length: Int64)?
        var sink: (fd: Int32, offset: Int64)?
        var written: Int64 = 0
        var onBytes: ((Int64) -> Bool)?
        var onData: ((UnsafeRawBufferPointer, Int64) -> Void)?
        var rangeIgnored = false
        var shouldAbort: (@Sendable () -> Bool)?
        var onBody: ((UnsafeRawBufferPointer) -> Bool)?
        /// HEAD responses announce a length but carry no body.
        var noBody = false
        /// A download's bytes gathered before they are written: curl hands
        /// them over 16 KiB at a time, the file gets them a MiB at a time.
        var stage: UnsafeMutableRawBufferPointer?
        var staged = 0

        init(limit: Int, upload: [UInt8]) {
            self.limit = limit
            self.upload = upload
        }

        deinit { stage?.deallocate() }

        /// Takes a chunk of a download's body, writing full stages.
        func take(_ ptr: UnsafeRawPointer, _ n: Int) -> Bool {
            if stage == nil { stage = .allocate(byteCount: 1 << 20, alignment: 4096) }
            let stage = stage!
            var p = ptr, left = n
            while left > 0 {
                let k = min(left, stage.count - staged)
                (stage.baseAddress! + staged).copyMemory(from: p, byteCount: k)
                staged += k
                p += k
                left -= k
                if staged == stage.count && !flush() { return false }
            }
            return true
        }

        /// Writes what is staged to the download file (and shows it to
        /// `onData`); false when writing failed.
        func flush() -> Bool {
            guard let sink, let stage, staged > 0 else { return true }
            let at = sink.offset + written
            var done = 0
            while done < staged {
                let w = pwrite(sink.fd, stage.baseAddress! + done, staged - done, off_t(at + Int64(done)))
                if w < 0 && errno == EINTR { continue }
                if w <= 0 { writeFailed = true; return false }
                done += w
            }
            onData?(UnsafeRawBufferPointer(start: stage.baseAddress!, count: staged), at)
            written += Int64(staged)
            staged = 0
            return true
        }
    }

    /// Performs the request, following up to 5 redirects itself (libcurl's
    /// own following is off): each hop must be http(s), and credential
    /// headers never go to another origin (HTTPRedirect).
    func perform(_ request: HTTPRequest, _ settings: HTTPSettings) throws -> HTTPResponse {
        var req = request
        var hops = 0
        while true {
            let (response, next) = try performOnce(req, settings)
            guard req.followRedirects, HTTPRedirect.statuses.contains(response.status), let next else { return response }
            guard hops < HTTPRedirect.maxHops else {
                throw HTTPTransportError(message: "more than \(HTTPRedirect.maxHops) redirects", retryable: false, tooLarge: false)
            }
            hops += 1
            req = try HTTPRedirect.follow(req, to: next, status: response.status)
        }
    }

    private func performOnce(_ request: HTTPRequest, _ settings: HTTPSettings) throws -> (HTTPResponse, String?) {
        curl_easy_reset(handle)
        guard cshim_curl_limit_protocols(handle) == CURLE_OK else {
            throw HTTPTransportError(message: "libcurl cannot limit transfers to http and https", retryable: false, tooLarge: false)
        }
        let exchange = Exchange(limit: request.maxResponseBytes, upload: request.body ?? [])
        if request.reserveBytes > 0 { exchange.body.reserveCapacity(min(request.reserveBytes, request.maxResponseBytes)) }
        exchange.source = request.uploadFile
        exchange.sink = request.downloadFile
        exchange.onBytes = request.onBytes
        exchange.onData = request.onData
        exchange.shouldAbort = request.shouldAbort
        exchange.onBody = request.onBody
        exchange.noBody = request.method == "HEAD"
        let context = Unmanaged.passRetained(exchange)
        defer { context.release() }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        for h in request.headers + ["Expect:"] { headerList = curl_slist_append(headerList, h) }

        let rc: CURLcode = request.url.withCString { url in
            errorBuffer.withUnsafeMutableBufferPointer { errBuf in
                (settings.caFile ?? "").withCString { caFile in
                  (request.unixSocketPath ?? "").withCString { socketPath in
                    request.method.withCString { method in
                        _ = cshim_curl_setopt_ptr(handle, CURLOPT_URL, url)
                        _ = cshim_curl_setopt_ptr(handle, CURLOPT_ERRORBUFFER, errBuf.baseAddress)
                        _ = cshim_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
                        _ = cshim_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, settings.connectTimeoutMs)
                        _ = cshim_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, settings.totalTimeoutMs)
                        if settings.stallTimeoutSeconds > 0 {
                            _ = cshim_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
                            _ = cshim_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, settings.stallTimeoutSeconds)
                        }
                        _ = cshim_curl_setopt_ptr(handle, CURLOPT_HTTPHEADER, headerList)
                        if request.unixSocketPath != nil {
                            _ = cshim_curl_setopt_ptr(handle, CURLOPT_UNIX_SOCKET_PATH, socketPath)
                        }
                        if request.freshConnection {
                            _ = cshim_curl_setopt_long(handle, CURLOPT_FRESH_CONNECT, 1)
                            _ = cshim_curl_setopt_long(handle, CURLOPT_FORBID_REUSE, 1)
                        }
                        if request.http2PriorKnowledge {
                            _ = cshim_curl_setopt_long(handle, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE))
                        }
                        if request.downloadFile != nil {
                            // Large reads: fewer system calls, and whole
                            // pages written to the file.
                            _ = cshim_curl_setopt_long(handle, CURLOPT_BUFFERSIZE, 1 << 20)
                        }
                        if settings.insecure {
                            _ = cshim_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 0)
                            _ = cshim_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 0)
                        } else if settings.caFile != nil {
                            _ = cshim_curl_setopt_ptr(handle, CURLOPT_CAINFO, caFile)
                        }
                        _ = cshim_curl_setopt_write(handle) { ptr, size, count, user in
                            let ex = Unmanaged<Exchange>.fromOpaque(user!).takeUnretainedValue()
                            let n = size * count
                            if let onBody = ex.onBody {
                                guard let ptr else { return n }
                                if !onBody(UnsafeRawBufferPointer(start: ptr, count: n)) { ex.aborted = true; return 0 }
                                return n
                            }
                            if let sink = ex.sink, (200..<300).contains(ex.status), let ptr {
                                if sink.offset > 0 && ex.status != 206 { ex.rangeIgnored = true; return 0 }
                                if !ex.take(ptr, n) { return 0 }
                                if let cb = ex.onBytes, !cb(Int64(n)) { ex.aborted = true; return 0 }
                                return n
                            }
                            if ex.body.count + n > ex.limit {
                                ex.tooLarge = true
                                return 0
                            }
                            if let ptr { ex.body.append(contentsOf: UnsafeRawBufferPointer(start: ptr, count: n)) }
                            return n
                        }
                        _ = cshim_curl_setopt_ptr(handle, CURLOPT_WRITEDATA, context.toOpaque())
                        _ = cshim_curl_setopt_header(handle) { ptr, size, count, user in
                            let ex = Unmanaged<Exchange>.fromOpaque(user!).takeUnretainedValue()
                            let n = size * count
                            guard let ptr else { return n }
                            let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self)
                            if line.hasPrefix("HTTP/") {
                                ex.headers = [:]
                                let parts = line.split(separator: " ")
                                ex.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
                                return n
                            }
                            guard let colon = line.firstIndex(of: ":") else { return n }
                            let name = line[..<colon].lowercased()
                            let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t\r\n")
                            ex.headers[name] = value
                            let streamed = ex.noBody || (ex.sink != nil && (200..<300).contains(ex.status))
                            if name == "content-length", !streamed, let len = Int(value), len > ex.limit {
                                ex.tooLarge = true
                                return 0
                            }
                            return n
                        }
                        _ = cshim_curl_setopt_ptr(handle, CURLOPT_HEADERDATA, context.toOpaque())
                        if exchange.shouldAbort != nil {
                            _ = cshim_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
                            _ = cshim_curl_setopt_xferinfo(handle) { user, _, _, _, _ in
                                let ex = Unmanaged<Exchange>.fromOpaque(user!).takeUnretainedValue()
                                if let abort = ex.shouldAbort, abort() {
                                    ex.aborted = true
                                    return 1
                                }
                                return 0
                            }
                            _ = cshim_curl_setopt_ptr(handle, CURLOPT_XFERINFODATA, context.toOpaque())
                        }
                        switch request.method {
                        case "GET": break
                        case "HEAD": _ = cshim_curl_setopt_long(handle, CURLOPT_NOBODY, 1)
                        case "PUT", "POST", "PATCH":
                            _ = cshim_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
                            _ = cshim_curl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE,
                                                      curl_off_t(exchange.source?.length ?? Int64(exchange.upload.count)))
                            _ = cshim_curl_setopt_read(handle) { ptr, size, count, user in
                                let ex = Unmanaged<Exchange>.fromOpaque(user!).takeUnretainedValue()
                                if let src = ex.source, let ptr {
                                    let want = Int(min(Int64(size * count), src.length - Int64(ex.uploaded)))
                                    if want <= 0 { return 0 }
                                    var r = pread(src.fd, ptr, want, off_t(src.offset + Int64(ex.uploaded)))
                                    while r < 0 && errno == EINTR { r = pread(src.fd, ptr, want, off_t(src.offset + Int64(ex.uploaded))) }
                                    if r <= 0 { return Int(CURL_READFUNC_ABORT) }
                                    ex.uploaded += r
                                    if let cb = ex.onBytes, !cb(Int64(r)) { ex.aborted = true; return Int(CURL_READFUNC_ABORT) }
                                    return r
                                }
                                let n = min(size * count, ex.upload.count - ex.uploaded)
                                if n > 0, let ptr {
                                    ex.upload.withUnsafeBytes { src in
                                        UnsafeMutableRawPointer(ptr).copyMemory(from: src.baseAddress! + ex.uploaded, byteCount: n)
                                    }
                                    ex.uploaded += n
                                }
                                return n
                            }
                            _ = cshim_curl_setopt_ptr(handle, CURLOPT_READDATA, context.toOpaque())
                            if request.method != "PUT" {
                                _ = cshim_curl_setopt_ptr(handle, CURLOPT_CUSTOMREQUEST, method)
                            }
                        default:
                            _ = cshim_curl_setopt_ptr(handle, CURLOPT_CUSTOMREQUEST, method)
                        }
                        return curl_easy_perform(handle)
                    }
                  }
                }
            }
        }
        // What was received is in the file, whatever happened next (a
        // resumed download goes on from there).
        _ = exchange.flush()
        if exchange.tooLarge {
            throw HTTPTransportError(message: "response is larger than \(request.maxResponseBytes) bytes", retryable: false, tooLarge: true)
        }
        if exchange.aborted {
            throw HTTPTransportError(message: "transfer canceled", retryable: false, tooLarge: false, aborted: true,
                                     bytesWritten: exchange.written)
        }
        if exchange.rangeIgnored {
            throw HTTPTransportError(message: "the server ignored the range of a resumed download", retryable: true,
                                     tooLarge: false, rangeIgnored: true)
        }
        if exchange.writeFailed {
            throw HTTPTransportError(message: "writing the download failed: \(String(cString: strerror(errno)))", retryable: false,
                                     tooLarge: false, bytesWritten: exchange.written)
        }
        guard rc == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let text = detail.isEmpty ? String(cString: curl_easy_strerror(rc)) : detail
            let retryable = [CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_OPERATION_TIMEDOUT, CURLE_SEND_ERROR,
                             CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE].contains(rc)
            throw HTTPTransportError(message: text, retryable: retryable, tooLarge: false, bytesWritten: exchange.written,
                                     timedOut: rc == CURLE_OPERATION_TIMEDOUT)
        }
        var status = 0
        _ = cshim_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        var redirect: UnsafeMutablePointer<CChar>?
        _ = cshim_curl_getinfo_ptr(handle, CURLINFO_REDIRECT_URL, &redirect)
        return (HTTPResponse(status: status, headers: exchange.headers, body: exchange.body, effectiveURL: request.url),
                redirect.map { String(cString: $0) })
    }
}
