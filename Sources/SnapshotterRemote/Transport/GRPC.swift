#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// Where a gRPC server listens, from the target forms gRPC clients accept:
/// `unix:///abs/path`, `unix:/abs/path`, `unix:abs/path` (a Unix socket),
/// `host:port`, `dns:///host:port`, `dns:host:port` and `http://host:port`
/// (TCP, cleartext HTTP/2). TLS targets are not supported: the daemon is
/// local.
package struct GRPCTarget: Sendable, Equatable {
    /// The socket's path, or nil for TCP.
    package let socketPath: String?
    /// `http://authority` the calls go to (`localhost` on a socket).
    package let base: String

    package static func parse(_ target: String) throws -> GRPCTarget {
        func bad(_ why: String) -> SnapshotterError {
            SnapshotterError.invalid("gRPC target \(target.debugDescription) \(why): use unix:///path/to/socket, host:port or dns:///host:port")
        }
        guard !target.isEmpty, !target.utf8.contains(where: { $0 < 0x21 || $0 == 0x7f }) else {
            throw bad("is empty or holds spaces or control characters")
        }
        if target.hasPrefix("unix:") {
            var path = target.dropFirst("unix:".count)
            if path.hasPrefix("//") { path = path.dropFirst(2) }
            guard !path.isEmpty, !path.contains("\0") else { throw bad("names no socket") }
            return GRPCTarget(socketPath: String(path), base: "http://localhost")
        }
        var hostPort = Substring(target)
        for prefix in ["dns:///", "dns:", "http://"] where hostPort.hasPrefix(prefix) {
            hostPort = hostPort.dropFirst(prefix.count)
            break
        }
        if hostPort.hasSuffix("/") { hostPort = hostPort.dropLast() }
        guard !target.hasPrefix("https://"), !hostPort.contains("://") else { throw bad("has an unsupported scheme") }
        guard let colon = hostPort.lastIndex(of: ":") else { throw bad("has no port") }
        let host = hostPort[..<colon]
        let port = hostPort[hostPort.index(after: colon)...]
        guard let p = Int(port), (1...65535).contains(p), port.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw bad("has no valid port")
        }
        let bracketed = host.hasPrefix("[") && host.hasSuffix("]") && host.count > 2
        let hostChars = bracketed ? host.dropFirst().dropLast() : host
        let allowed: (Character) -> Bool = { c in
            c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "-" || c == "_" || (bracketed && c == ":"))
        }
        guard !hostChars.isEmpty, hostChars.allSatisfy(allowed) else { throw bad("has no valid host") }
        return GRPCTarget(socketPath: nil, base: "http://\(host):\(p)")
    }
}

/// A call's end other than OK: the server's grpc-status and grpc-message.
package struct GRPCStatusError: Error, CustomStringConvertible {
    package let code: Int
    package let message: String

    package static let cancelled = 1, notFound = 5, alreadyExists = 6, internalError = 13, unavailable = 14

    package static let names = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
                        "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"]

    package var name: String { names(code) }
    private func names(_ c: Int) -> String { c >= 0 && c < Self.names.count ? Self.names[c] : "status \(c)" }

    package var description: String { message.isEmpty ? name : "\(name): \(message)" }

    /// The status gRPC gives an HTTP answer that is not a gRPC one.
    package static func fromHTTP(_ status: Int) -> GRPCStatusError {
        let code: Int
        switch status {
        case 400: code = 13
        case 401: code = 16
        case 403: code = 7
        case 404: code = 12
        case 429, 502, 503, 504: code = 14
        default: code = 2
        }
        return GRPCStatusError(code: code, message: "the server answered HTTP \(status), not gRPC")
    }
}

/// A call that broke below gRPC: no connection, a dropped stream, a
/// timeout (connect, whole call, or nothing moving for the stall time).
package struct GRPCTransportError: Error {
    package let message: String
    package let timedOut: Bool
}

/// The length-prefixed messages of a gRPC body, taken as the bytes arrive
/// in any pieces: a flag byte (0: not compressed), a 4-byte big-endian
/// length, the message. Outside data: lengths are bounded, compressed
/// messages (never asked for) and a truncated last message are errors.
package struct GRPCFrameDecoder {
    package static let headerBytes = 5
    package let maxMessageBytes: Int
    private var header: [UInt8] = []
    private var message: [UInt8] = []
    private var expected = -1

    package init(maxMessageBytes: Int = 4 << 20) { self.maxMessageBytes = maxMessageBytes }

    /// Feeds body bytes, handing each complete message to `onMessage`.
    package mutating func feed(_ bytes: UnsafeRawBufferPointer,
                       _ onMessage: (UnsafeRawBufferPointer) throws -> Void) throws {
        var at = 0
        while at < bytes.count {
            if expected < 0 {
                let k = min(Self.headerBytes - header.count, bytes.count - at)
                header.append(contentsOf: bytes[at..<(at + k)])
                at += k
                guard header.count == Self.headerBytes else { continue }
                guard header[0] == 0 else {
                    throw SnapshotterError(.transport, "gRPC message with flags \(header[0]): compression was not asked for")
                }
                let length = header[1...4].reduce(0) { $0 << 8 | Int($1) }
                guard length <= maxMessageBytes else {
                    throw SnapshotterError(.transport, "gRPC message of \(length) bytes is larger than \(maxMessageBytes)")
                }
                expected = length
                message.removeAll(keepingCapacity: true)
                message.reserveCapacity(length)
            }
            let k = min(expected - message.count, bytes.count - at)
            message.append(contentsOf: bytes[at..<(at + k)])
            at += k
            if message.count == expected {
                try message.withUnsafeBytes { try onMessage($0) }
                header.removeAll(keepingCapacity: true)
                expected = -1
            }
        }
    }

    /// Checks the body ended on a message boundary.
    package func finish() throws {
        guard header.isEmpty && expected < 0 else {
            let got = expected < 0 ? "\(header.count) of 5 header bytes" : "\(message.count) of \(expected) bytes"
            throw SnapshotterError(.transport, "gRPC stream ended inside a message (\(got))")
        }
    }

    /// A message framed for sending.
    package static func frame(_ message: [UInt8]) -> [UInt8] {
        let n = UInt32(truncatingIfNeeded: message.count)
        return [0, UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + message
    }
}

/// gRPC calls over libcurl: HTTP/2 with prior knowledge on a Unix socket or
/// TCP, one request message, the response messages taken as they arrive,
/// and the status from the headers or trailers. Synchronous: called on the
/// blocking pool's threads. Connections are kept by the pool's handles.
package final class GRPCChannel: Sendable {
    package let target: GRPCTarget
    private let pool = CurlPool()

    package init(_ target: GRPCTarget) { self.target = target }

    package struct CallOptions {
        package var connectTimeoutMs = 10_000
        /// The whole call; 0: no limit (streams end by cancel or stall).
        package var timeoutMs = 0
        /// A call that receives no byte of its response for this long
        /// fails (timed out); 0: no limit.
        package var stallSeconds: Double = 30
        package var shouldAbort: (@Sendable () -> Bool)? = nil
        package var maxMessageBytes = 4 << 20
    }

    /// A unary call: the one response message.
    package func unary(_ path: String, _ request: [UInt8], _ options: CallOptions) throws -> [UInt8] {
        var response: [UInt8]?
        try call(path, request, options) { message in
            guard response == nil else { throw SnapshotterError(.transport, "gRPC \(path): more than one response message") }
            response = Array(message)
        }
        guard let response else { throw SnapshotterError(.transport, "gRPC \(path): no response message") }
        return response
    }

    /// A call with one request message: every response message goes to
    /// `onMessage` as it arrives (its error ends the call and is rethrown);
    /// returns when the server ends the call with OK, throws
    /// `GRPCStatusError` for any other status.
    package func call(_ path: String, _ request: [UInt8], _ options: CallOptions,
              onMessage: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        let state = CallState(maxMessageBytes: options.maxMessageBytes, stallSeconds: options.stallSeconds, onMessage: onMessage)
        var req = HTTPRequest(method: "POST", url: target.base + path)
        req.headers = ["Content-Type: application/grpc", "TE: trailers"]
        req.body = GRPCFrameDecoder.frame(request)
        req.unixSocketPath = target.socketPath
        req.http2PriorKnowledge = true
        req.followRedirects = false
        // libcurl 7.88 fails a second request on a kept HTTP/2 connection
        // to grpcio's server ("Error in the HTTP2 framing layer", before
        // sending anything; the curl tool does the same): one connection
        // per call, which on a local socket costs little against a
        // content file's transfer.
        req.freshConnection = true
        let abort = options.shouldAbort
        req.shouldAbort = { state.isStalled || abort?() == true }
        req.onBody = { state.take($0) }
        var settings = HTTPSettings()
        settings.connectTimeoutMs = options.connectTimeoutMs
        settings.totalTimeoutMs = options.timeoutMs
        settings.stallTimeoutSeconds = 0  // the call's own, below
        let response: HTTPResponse
        do {
            response = try pool.perform(req, settings)
        } catch let e as HTTPTransportError {
            if let failure = state.failure { throw failure }
            if e.aborted && state.stalled { throw GRPCTransportError(message: "nothing received for \(options.stallSeconds) s", timedOut: true) }
            if e.aborted { throw SnapshotterError.canceled }
            throw GRPCTransportError(message: e.message, timedOut: e.timedOut)
        }
        if let failure = state.failure { throw failure }
        let status = response.header("grpc-status")
        if response.status != 200 && status == nil { throw GRPCStatusError.fromHTTP(response.status) }
        guard let status else {
            throw SnapshotterError(.transport, "gRPC \(path): the call ended without a grpc-status")
        }
        guard let code = Int(status), code >= 0, status.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw SnapshotterError(.transport, "gRPC \(path): grpc-status \(Redact.printable(status, max: 16).debugDescription) is not a number")
        }
        guard code == 0 else {
            throw GRPCStatusError(code: code, message: Self.statusMessage(response.header("grpc-message") ?? ""))
        }
        try state.decoder.finish()
    }

    /// grpc-message is percent-encoded; the result is kept printable and
    /// short (it goes into error messages).
    package static func statusMessage(_ raw: String) -> String {
        let bytes = Array(raw.utf8)
        var out: [UInt8] = []
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x25, i + 2 < bytes.count, let a = hex(bytes[i + 1]), let b = hex(bytes[i + 2]) {
                out.append(a << 4 | b)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return Redact.printable(String(decoding: out, as: UTF8.self), max: 512)
    }
}

/// What the callbacks of one call keep: the frame decoder, the first
/// error (which aborts the transfer) and when the last bytes came. Used on
/// the transfer's thread only.
private final class CallState: @unchecked Sendable {
    var decoder: GRPCFrameDecoder
    let onMessage: (UnsafeRawBufferPointer) throws -> Void
    var failure: Error?
    private let stallNanos: UInt64
    private var last = Sys.monotonicNanos()
    private(set) var stalled = false

    init(maxMessageBytes: Int, stallSeconds: Double, onMessage: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        decoder = GRPCFrameDecoder(maxMessageBytes: maxMessageBytes)
        stallNanos = stallSeconds > 0 ? UInt64(Int64.nanos(seconds: stallSeconds)) : 0
        self.onMessage = onMessage
    }

    /// Asked by the progress callback: true once nothing came for the
    /// stall time (then it stays true).
    var isStalled: Bool {
        if !stalled && stallNanos > 0 && Sys.monotonicNanos() &- last > stallNanos { stalled = true }
        return stalled
    }

    func take(_ bytes: UnsafeRawBufferPointer) -> Bool {
        last = Sys.monotonicNanos()
        guard failure == nil else { return false }
        do {
            try decoder.feed(bytes, onMessage)
            return true
        } catch {
            failure = error
            return false
        }
    }
}
