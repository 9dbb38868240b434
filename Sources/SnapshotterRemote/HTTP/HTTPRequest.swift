import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// One HTTP exchange over libcurl.
package struct HTTPRequest: @unchecked Sendable {
    package var method = "GET"
    package var url: String
    package var headers: [String] = []
    package var body: [UInt8]? = nil
    /// Responses larger than this are refused while streaming.
    package var maxResponseBytes = 8 << 20
    /// The body's expected size: reserved up front so a large body is not
    /// copied as it grows.
    package var reserveBytes = 0
    /// Upload `length` bytes of this file from `offset` instead of `body`.
    package var uploadFile: (fd: Int32, offset: Int64, length: Int64)? = nil
    /// Write a 2xx response body into this file from `offset`.
    package var downloadFile: (fd: Int32, offset: Int64)? = nil
    /// Told of every body byte moved (up or down); false aborts the
    /// transfer (cancellation).
    package var onBytes: ((Int64) -> Bool)? = nil
    /// Sees each body byte as it is written to `downloadFile`, with the
    /// file offset it went to (called from the transfer's thread).
    package var onData: ((UnsafeRawBufferPointer, Int64) -> Void)? = nil
    /// Asked about once a second, and on every transfer event, even while
    /// nothing moves: true aborts (a canceled operation does not wait for
    /// a stalled server's timeout).
    package var shouldAbort: (@Sendable () -> Bool)? = nil
    /// Takes the whole response body as it arrives (any status), instead
    /// of it being gathered or written to a file; false aborts.
    package var onBody: ((UnsafeRawBufferPointer) -> Bool)? = nil
    /// Connect through this Unix socket instead of the URL's host.
    package var unixSocketPath: String? = nil
    /// HTTP/2 without negotiation (cleartext h2, as gRPC speaks it).
    package var http2PriorKnowledge = false
    /// 3xx answers are followed (checked hop by hop) unless this is false.
    package var followRedirects = true
    /// A new connection, closed after the exchange.
    package var freshConnection = false
}
