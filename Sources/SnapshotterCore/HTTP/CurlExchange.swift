/// One transfer's state, reached by the C callbacks through their
/// userdata: the response as it arrives (status, headers, body or
/// download file), the request's body, and why it was cut short.
final class CurlExchange {
    var body: [UInt8] = []
    var headers: [String: String] = [:]
    var status = 0
    let limit: Int
    var tooLarge = false
    var aborted = false
    /// A resumed download answered with the whole body; nothing written.
    var rangeIgnored = false
    let source: UploadSource
    /// Set for a download into a file (2xx bodies go there).
    let sink: DownloadSink?
    let onBytes: ((Int64) -> Bool)?
    let shouldAbort: (@Sendable () -> Bool)?
    let onBody: ((UnsafeRawBufferPointer) -> Bool)?
    /// HEAD responses announce a length but carry no body.
    let noBody: Bool
    /// libcurl's CURLOPT_ERRORBUFFER.
    let errorBuffer: UnsafeMutablePointer<CChar>

    init(_ request: HTTPRequest, errorBufferSize: Int) {
        limit = request.maxResponseBytes
        if request.reserveBytes > 0 { body.reserveCapacity(min(request.reserveBytes, request.maxResponseBytes)) }
        source = UploadSource(request)
        sink = request.downloadFile.map { DownloadSink(fd: $0.fd, offset: $0.offset, onData: request.onData) }
        onBytes = request.onBytes
        shouldAbort = request.shouldAbort
        onBody = request.onBody
        noBody = request.method == "HEAD"
        errorBuffer = .allocate(capacity: errorBufferSize + 1)
        errorBuffer.initialize(repeating: 0, count: errorBufferSize + 1)
    }

    deinit { errorBuffer.deallocate() }

    static func of(_ user: UnsafeMutableRawPointer?) -> CurlExchange {
        Unmanaged<CurlExchange>.fromOpaque(user!).takeUnretainedValue()
    }

    private var isDownload: Bool { sink != nil && (200..<300).contains(status) }

    /// CURLOPT_WRITEFUNCTION: `n` body bytes; returns `n`, or 0 to stop.
    func write(_ ptr: UnsafeMutablePointer<CChar>?, _ n: Int) -> Int {
        let bytes = UnsafeRawBufferPointer(start: ptr, count: ptr == nil ? 0 : n)
        if let onBody {
            guard ptr != nil else { return n }
            if !onBody(bytes) { aborted = true; return 0 }
            return n
        }
        if let sink, isDownload, ptr != nil {
            if sink.offset > 0 && status != 206 { rangeIgnored = true; return 0 }
            if !sink.take(bytes) { return 0 }
            if let onBytes, !onBytes(Int64(n)) { aborted = true; return 0 }
            return n
        }
        if body.count + n > limit {
            tooLarge = true
            return 0
        }
        body.append(contentsOf: bytes)
        return n
    }

    /// CURLOPT_HEADERFUNCTION: one header line (or status line, which
    /// starts a new response: a redirect's or a 100's headers are dropped).
    func header(_ ptr: UnsafeMutablePointer<CChar>?, _ n: Int) -> Int {
        guard let ptr else { return n }
        let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            headers = [:]
            let parts = line.split(separator: " ")
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            return n
        }
        guard let colon = line.firstIndex(of: ":") else { return n }
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t\r\n")
        headers[name] = value
        if name == "content-length", !noBody, !isDownload, let length = Int(value), length > limit {
            tooLarge = true
            return 0
        }
        return n
    }

    /// CURLOPT_XFERINFOFUNCTION: nonzero aborts.
    func progress() -> Int32 {
        guard let shouldAbort, shouldAbort() else { return 0 }
        aborted = true
        return 1
    }
}
