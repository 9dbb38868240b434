import CCurl
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// The request's settings as curl options. Every curl_easy_setopt result
/// is checked: an option libcurl refuses (too long a string, a feature
/// this libcurl lacks) fails the request naming the option, instead of
/// the transfer running without it.
extension CurlEasy {
    package func setOption(_ option: CURLoption, _ value: Int) throws {
        try Self.check(cshim_curl_setopt_long(handle, option, value), option)
    }

    package func setOption(_ option: CURLoption, pointer: UnsafeRawPointer?) throws {
        try Self.check(cshim_curl_setopt_ptr(handle, option, pointer), option)
    }

    /// libcurl copies string options (7.17+), so the C string need only
    /// last the call.
    package func setOption(_ option: CURLoption, _ value: String) throws {
        try Self.check(value.withCString { cshim_curl_setopt_ptr(handle, option, $0) }, option)
    }

    package static func check(_ rc: CURLcode, _ option: CURLoption) throws {
        guard rc != CURLE_OK else { return }
        let name = cshim_curl_option_name(option).map { "CURLOPT_" + String(cString: $0) } ?? "curl option \(option.rawValue)"
        throw HTTPTransportError(message: "libcurl refused \(name): \(String(cString: cshim_curl_easy_strerror(rc)))",
                                 retryable: false, tooLarge: false)
    }

    /// Where the request goes and how it connects.
    package func setTarget(_ request: HTTPRequest, errorBuffer: UnsafeMutablePointer<CChar>) throws {
        try setOption(CURLOPT_URL, request.url)
        try setOption(CURLOPT_ERRORBUFFER, pointer: errorBuffer)
        try setOption(CURLOPT_NOSIGNAL, 1)
        if let socket = request.unixSocketPath { try setOption(CURLOPT_UNIX_SOCKET_PATH, socket) }
        if request.freshConnection {
            try setOption(CURLOPT_FRESH_CONNECT, 1)
            try setOption(CURLOPT_FORBID_REUSE, 1)
        }
        if request.http2PriorKnowledge { try setOption(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE)) }
        // Large reads for a download: fewer system calls, and whole pages
        // written to the file.
        if request.downloadFile != nil { try setOption(CURLOPT_BUFFERSIZE, 1 << 20) }
    }

    /// Timeouts and the stall limit.
    package func setLimits(_ request: HTTPRequest, _ settings: HTTPSettings) throws {
        try setOption(CURLOPT_CONNECTTIMEOUT_MS, settings.connectTimeoutMs)
        try setOption(CURLOPT_TIMEOUT_MS, settings.totalTimeoutMs)
        if settings.stallTimeoutSeconds > 0 {
            try setOption(CURLOPT_LOW_SPEED_LIMIT, 1)
            try setOption(CURLOPT_LOW_SPEED_TIME, settings.stallTimeoutSeconds)
        }
    }

    package func setTLS(_ settings: HTTPSettings) throws {
        if settings.insecure {
            try setOption(CURLOPT_SSL_VERIFYPEER, 0)
            try setOption(CURLOPT_SSL_VERIFYHOST, 0)
        } else if let ca = settings.caFile {
            try setOption(CURLOPT_CAINFO, ca)
        }
    }

    /// The response callbacks, all reaching the exchange through `context`;
    /// the progress callback only when the request can be aborted.
    package func setCallbacks(_ context: UnsafeMutableRawPointer, progress: Bool) throws {
        try Self.check(cshim_curl_setopt_write(handle) { p, size, count, user in CurlExchange.of(user).write(p, size * count) },
                       CURLOPT_WRITEFUNCTION)
        try setOption(CURLOPT_WRITEDATA, pointer: context)
        try Self.check(cshim_curl_setopt_header(handle) { p, size, count, user in CurlExchange.of(user).header(p, size * count) },
                       CURLOPT_HEADERFUNCTION)
        try setOption(CURLOPT_HEADERDATA, pointer: context)
        guard progress else { return }
        try setOption(CURLOPT_NOPROGRESS, 0)
        try Self.check(cshim_curl_setopt_xferinfo(handle) { user, _, _, _, _ in CurlExchange.of(user).progress() },
                       CURLOPT_XFERINFOFUNCTION)
        try setOption(CURLOPT_XFERINFODATA, pointer: context)
    }

    /// The method, and for PUT, POST and PATCH the body's source.
    package func setMethod(_ method: String, bodyLength: Int64, _ context: UnsafeMutableRawPointer) throws {
        switch method {
        case "GET": break
        case "HEAD": try setOption(CURLOPT_NOBODY, 1)
        case "PUT", "POST", "PATCH":
            try setOption(CURLOPT_UPLOAD, 1)
            try Self.check(cshim_curl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(bodyLength)), CURLOPT_INFILESIZE_LARGE)
            try Self.check(cshim_curl_setopt_read(handle) { p, size, count, user in CurlExchange.of(user).source.read(into: p, max: size * count) },
                           CURLOPT_READFUNCTION)
            try setOption(CURLOPT_READDATA, pointer: context)
            if method != "PUT" { try setOption(CURLOPT_CUSTOMREQUEST, method) }
        default:
            try setOption(CURLOPT_CUSTOMREQUEST, method)
        }
    }
}
