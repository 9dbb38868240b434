import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// Where content bytes go between machines (FORMAT.md section 6): every
/// content file (its SPF1 encoding) under the key `xxh3/<hex>`. The engine
/// above this is transport-agnostic.
package protocol ContentTransport: Sendable {
    /// Names the remote in errors and in the uploaded-digest memory.
    var remoteID: String { get }
    /// Whether the remote has the digest.
    func has(_ digest: Digest) throws -> Bool
    /// Uploads the content file at `path` under its digest; an object
    /// already there is success.
    func upload(_ digest: Digest, path: String, cancel: CancellationFlag) throws
    /// Downloads the digest into the (new, empty) file `fd` at `tempPath`,
    /// showing `tap` the bytes it writes there (when they pass through this
    /// process) and telling `onBytes` of progress; or puts another file
    /// holding them at `tempPath` instead (see `DownloadedFile`).
    /// Not-found is `.notFound`.
    func download(_ digest: Digest, into fd: Int32, tempPath: String, cancel: CancellationFlag,
                  tap: DownloadTap?, onBytes: @escaping (Int64) -> Void) throws -> DownloadedFile
}
