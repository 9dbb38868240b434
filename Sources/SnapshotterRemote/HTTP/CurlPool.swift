import CCurl
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// libcurl's global state is initialised once, before any handle exists.
package enum CurlGlobal {
    package static let ready: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
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
