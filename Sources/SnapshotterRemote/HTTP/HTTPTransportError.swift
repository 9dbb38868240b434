import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// Transport-level failures (no HTTP status), with whether a retry may help.
package struct HTTPTransportError: Error {
    package var message: String
    package var retryable: Bool
    package var tooLarge: Bool
    package var aborted = false
    /// Body bytes written to the download file before the failure.
    package var bytesWritten: Int64 = 0
    /// The server answered a download that starts past 0 (a resumed one)
    /// with the whole body instead of the range; nothing was written.
    package var rangeIgnored = false
    /// The connect, total or stall timeout ended it.
    package var timedOut = false
}
