import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// A response as libcurl delivered it (the last hop's, after redirects).
package struct HTTPResponse: Sendable {
    package var status: Int
    /// Header names lowercased; later values win.
    package var headers: [String: String]
    package var body: [UInt8]
    /// The URL after redirects.
    package var effectiveURL: String

    package func header(_ name: String) -> String? { headers[name.lowercased()] }
}
