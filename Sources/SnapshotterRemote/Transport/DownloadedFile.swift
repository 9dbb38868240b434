import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// Where a download left its bytes.
package enum DownloadedFile: Equatable {
    /// In the caller's file.
    case written
    /// In a new file the transport renamed to the temporary name in place
    /// of the caller's (the Dragonfly daemon's hard link to its cache file:
    /// no byte copied); `fd` is that file, read-only, the caller's to close.
    case replaced(fd: Int32)
}
