import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// Checks a download's bytes as they are written into its file, so they
/// need not be read back: an SPF1 decoder (hashing, and writing a decoded
/// copy when asked) fed in file order. Bytes that arrive out of order (a
/// download that started again) or a file written by someone else (the
/// Dragonfly daemon) leave it without a result, and the file is then
/// checked by reading it. It also starts the file's writeback as it grows,
/// so the fsync at the end has little left to do. Used by one transfer at a
/// time.
package final class DownloadTap: @unchecked Sendable {
    private var decoder: SPF1.Decoder
    private let fd: Int32
    private var next: Int64 = 0
    private var outOfOrder = false
    private var failure: SnapshotterError?
    private var unsynced: Int64 = 0
    package static let writebackBytes: Int64 = 8 << 20

    package init(_ decoder: SPF1.Decoder, file fd: Int32) {
        self.decoder = decoder
        self.fd = fd
    }

    package func received(_ bytes: UnsafeRawBufferPointer, at offset: Int64) {
        guard !outOfOrder else { return }
        guard offset == next else { outOfOrder = true; return }
        next += Int64(bytes.count)
        if failure == nil {
            do { try decoder.feed(bytes) } catch { failure = error.asSnapshotterError }
        }
        unsynced += Int64(bytes.count)
        if unsynced >= Self.writebackBytes {
            Sys.startWriteback(fd)
            unsynced = 0
        }
    }

    /// The decoded result when every byte of the `fileSize`-byte file went
    /// through in order (its failure, when the stream is bad); nil when the
    /// file must be read back instead.
    package func result(fileSize: Int64) throws -> SPF1.DecodeResult? {
        guard !outOfOrder, next == fileSize else { return nil }
        if let failure { throw failure }
        return try decoder.finish()
    }
}
