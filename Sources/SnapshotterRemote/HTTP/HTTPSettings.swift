import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// TLS and timeout settings shared by the requests of one client.
package struct HTTPSettings: Sendable {
    package var insecure = false
    package var caFile: String?
    package var connectTimeoutMs = 10_000
    /// A transfer that moves less than one byte a second for this long
    /// fails (a registry that stops answering); 0: no such limit.
    package var stallTimeoutSeconds = 30
    package var totalTimeoutMs = 300_000
}
