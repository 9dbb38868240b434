import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// One transfer's state, reached by the C callbacks through their
/// userdata: the response as it arrives (status, headers, body or
/// download file), the request's body, and why it was cut short.
package final class CurlExchange {
    package var body: [UInt8] = []
    package var headers: [String: String] = [:]
    package var status = 0
    package let limit: Int
    package var tooLarge = false
    package var aborted = false
    /// A resumed download answered with the whole body; nothing written.
    package var rangeIgnored = false
    package let source: UploadSource
    /// Set for a download into a file (2xx bodies go there).
    package let sink: DownloadSink?
    package let onBytes: ((Int64) -> Bool)?
    package let shouldAbort: (@Sendable () -> Bool)?
    package let onBody: ((UnsafeRawBufferPointer) -> Bool)?
    /// HEAD responses announce a length but carry no body.
    package let noBody: Bool
    /// libcurl's CURLOPT_ERRORBUFFER.
    package let errorBuffer: UnsafeMutablePointer<CChar>

    package init(_ request: HTTPRequest, errorBufferSize: Int) {
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

    package static func of(_ user: UnsafeMutableRawPointer?) -> CurlExchange {
        Unmanaged<CurlExchange>.fromOpaque(user!).takeUnretainedValue()
    }

    private var isDownload: Bool { sink != nil && (200..<300).contains(status) }

    /// CURLOPT_WRITEFUNCTION: `n` body bytes; returns `n`, or 0 to stop.
    package func write(_ ptr: UnsafeMutablePointer<CChar>?, _ n: Int) -> Int {
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
    package func header(_ ptr: UnsafeMutablePointer<CChar>?, _ n: Int) -> Int {
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
    package func progress() -> Int32 {
        guard let shouldAbort, shouldAbort() else { return 0 }
        aborted = true
        return 1
    }
}
