import CCurl
#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// One libcurl easy handle, used by one request at a time (CurlPool).
package final class CurlEasy: @unchecked Sendable {
    package let handle: UnsafeMutableRawPointer

    package init() throws {
        try CurlGlobal.require()
        guard let h = cshim_curl_easy_init() else {
            throw SnapshotterError(.internal, "libcurl could not be initialised")
        }
        handle = h
    }

    deinit { cshim_curl_easy_cleanup(handle) }

    /// Performs the request, following up to 5 redirects itself (libcurl's
    /// own following is off): each hop must be http(s), and credential
    /// headers never go to another origin (HTTPRedirect).
    package func perform(_ request: HTTPRequest, _ settings: HTTPSettings) throws -> HTTPResponse {
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

    /// One exchange: the response and the Location of a redirect, if any.
    private func performOnce(_ request: HTTPRequest, _ settings: HTTPSettings) throws -> (HTTPResponse, String?) {
        cshim_curl_easy_reset(handle)
        guard cshim_curl_limit_protocols(handle) == CURLE_OK else {
            throw HTTPTransportError(message: "libcurl cannot limit transfers to http and https", retryable: false, tooLarge: false)
        }
        let exchange = CurlExchange(request, errorBufferSize: Int(CURL_ERROR_SIZE))
        let context = Unmanaged.passRetained(exchange)
        defer { context.release() }
        let headerList = try CurlHeaderList(request.headers + ["Expect:"])
        try setTarget(request, errorBuffer: exchange.errorBuffer)
        try setLimits(request, settings)
        try setTLS(settings)
        try setOption(CURLOPT_HTTPHEADER, pointer: headerList.list)
        try setCallbacks(context.toOpaque(), progress: request.shouldAbort != nil)
        try setMethod(request.method, bodyLength: exchange.source.length, context.toOpaque())
        let rc = withExtendedLifetime(headerList) { cshim_curl_easy_perform(handle) }
        // What was received is in the file, whatever happened next (a
        // resumed download goes on from there).
        _ = exchange.sink?.flush()
        try Self.check(exchange, rc, request)
        return (HTTPResponse(status: responseCode(), headers: exchange.headers, body: exchange.body, effectiveURL: request.url),
                redirectURL())
    }

    /// Throws the transfer's failure, if it had one.
    private static func check(_ exchange: CurlExchange, _ rc: CURLcode, _ request: HTTPRequest) throws {
        let written = exchange.sink?.written ?? 0
        if exchange.tooLarge {
            throw HTTPTransportError(message: "response is larger than \(request.maxResponseBytes) bytes", retryable: false, tooLarge: true)
        }
        if exchange.aborted || exchange.source.aborted {
            throw HTTPTransportError(message: "transfer canceled", retryable: false, tooLarge: false, aborted: true, bytesWritten: written)
        }
        if exchange.rangeIgnored {
            throw HTTPTransportError(message: "the server ignored the range of a resumed download", retryable: true,
                                     tooLarge: false, rangeIgnored: true)
        }
        if let e = exchange.sink?.writeError {
            throw HTTPTransportError(message: "writing the download failed: \(String(cString: strerror(e)))", retryable: false,
                                     tooLarge: false, bytesWritten: written)
        }
        guard rc == CURLE_OK else {
            let detail = String(cString: exchange.errorBuffer)
            let text = detail.isEmpty ? String(cString: cshim_curl_easy_strerror(rc)) : detail
            throw HTTPTransportError(message: text, retryable: RetryPolicy.retryable(rc), tooLarge: false, bytesWritten: written,
                                     timedOut: rc == CURLE_OPERATION_TIMEDOUT)
        }
    }

    private func responseCode() -> Int {
        var status = 0
        _ = cshim_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return status
    }

    private func redirectURL() -> String? {
        var redirect: UnsafeMutablePointer<CChar>?
        guard cshim_curl_getinfo_ptr(handle, CURLINFO_REDIRECT_URL, &redirect) == CURLE_OK else { return nil }
        return redirect.map { String(cString: $0) }
    }
}
