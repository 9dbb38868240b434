#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// Where a 2xx download's body goes: staged in a MiB buffer (curl hands it
/// over 16 KiB at a time) and written to the file a stage at a time, each
/// stage shown to `onData` with the file offset it went to.
package final class DownloadSink {
    package let fd: Int32
    /// The file offset of the body's first byte (past 0: a resumed download).
    package let offset: Int64
    package let onData: ((UnsafeRawBufferPointer, Int64) -> Void)?
    /// Bytes written to the file so far.
    private(set) var written: Int64 = 0
    /// errno of the write that failed, if one did.
    private(set) var writeError: Int32?
    private var stage: UnsafeMutableRawBufferPointer?
    private var staged = 0

    package init(fd: Int32, offset: Int64, onData: ((UnsafeRawBufferPointer, Int64) -> Void)?) {
        self.fd = fd
        self.offset = offset
        self.onData = onData
    }

    deinit { stage?.deallocate() }

    /// Takes a chunk of the body, writing full stages; false when writing
    /// failed.
    package func take(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let stage = stage ?? .allocate(byteCount: 1 << 20, alignment: 4096)
        self.stage = stage
        guard let base = stage.baseAddress, var p = bytes.baseAddress else { return true }
        var left = bytes.count
        while left > 0 {
            let k = min(left, stage.count - staged)
            (base + staged).copyMemory(from: p, byteCount: k)
            staged += k
            p += k
            left -= k
            if staged == stage.count && !flush() { return false }
        }
        return true
    }

    /// Writes what is staged; false when writing failed.
    package func flush() -> Bool {
        guard writeError == nil, let base = stage?.baseAddress, staged > 0 else { return writeError == nil }
        let at = offset + written
        var done = 0
        while done < staged {
            let w = pwrite(fd, base + done, staged - done, off_t(at + Int64(done)))
            if w < 0 && errno == EINTR { continue }
            if w <= 0 {
                writeError = w < 0 ? errno : EIO
                return false
            }
            done += w
        }
        onData?(UnsafeRawBufferPointer(start: base, count: staged), at)
        written += Int64(staged)
        staged = 0
        return true
    }
}
