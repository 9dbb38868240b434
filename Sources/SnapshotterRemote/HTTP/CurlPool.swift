import CCurl
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// libcurl is loaded and its global state initialised once, before the
/// first handle exists (not when the library is: ccurl.h says why).
package enum CurlGlobal {
    /// Why libcurl cannot be used, or nil when it can.
    package static let failure: String? = cshim_curl_load().map { String(cString: $0) }

    package static func require() throws {
        if let failure { throw SnapshotterError(.unsupported, "HTTP needs libcurl: \(failure)") }
    }
}

/// A pool of easy handles: each request takes one, so connections and TLS
/// sessions are reused across calls without sharing a handle between
/// threads.
package final class CurlPool: Sendable {
    private let idle = Locked<[CurlEasy]>([])

    package func perform(_ request: HTTPRequest, _ settings: HTTPSettings) throws -> HTTPResponse {
        let easy = try idle.withLock { $0.popLast() } ?? CurlEasy()
        defer { idle.withLock { if $0.count < 8 { $0.append(easy) } } }
        return try easy.perform(request, settings)
    }
}
