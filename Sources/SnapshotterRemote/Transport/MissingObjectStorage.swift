import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// The transport of a Dragonfly endpoint given without the object storage
/// behind it (the Go API takes that per call): opening the store works,
/// and each call that moves content fails, naming what is missing.
package struct MissingObjectStorage: ContentTransport {
    package let endpoint: String

    package init(_ endpoint: String) { self.endpoint = endpoint }

    package var remoteID: String { "dragonfly@\(endpoint)" }

    private var error: SnapshotterError {
        SnapshotterError(.invalidArgument, "Dragonfly endpoint \(endpoint.debugDescription) needs the object storage behind it: set the content URL (s3://bucket, oss://bucket, ...) for this call or the store")
    }

    package func has(_ digest: Digest) throws -> Bool { throw error }

    package func upload(_ digest: Digest, path: String, cancel: CancellationFlag) throws { throw error }

    package func download(_ digest: Digest, into fd: Int32, tempPath: String, cancel: CancellationFlag,
                  tap: DownloadTap?, onBytes: @escaping (Int64) -> Void) throws -> DownloadedFile {
        throw error
    }
}
