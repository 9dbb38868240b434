import CCurl
#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// Where a request's body comes from: bytes in memory, or a range of an
/// open file read as curl asks for it.
package final class UploadSource {
    private let bytes: [UInt8]
    private let file: (fd: Int32, offset: Int64, length: Int64)?
    /// Told of every file byte read; false aborts (cancellation).
    private let onBytes: ((Int64) -> Bool)?
    private var sent = 0
    private(set) var aborted = false

    package init(_ request: HTTPRequest) {
        bytes = request.body ?? []
        file = request.uploadFile
        onBytes = request.onBytes
    }

    /// The body's length, for CURLOPT_INFILESIZE_LARGE.
    package var length: Int64 { file?.length ?? Int64(bytes.count) }

    /// Fills up to `max` bytes at `into`: the count, 0 at the end, or
    /// CURL_READFUNC_ABORT.
    package func read(into ptr: UnsafeMutablePointer<CChar>?, max: Int) -> Int {
        guard let ptr else { return 0 }
        if let file { return readFile(file, into: ptr, max: max) }
        let n = min(max, bytes.count - sent)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { src in
            if let base = src.baseAddress { UnsafeMutableRawPointer(ptr).copyMemory(from: base + sent, byteCount: n) }
        }
        sent += n
        return n
    }

    private func readFile(_ src: (fd: Int32, offset: Int64, length: Int64), into ptr: UnsafeMutablePointer<CChar>, max: Int) -> Int {
        let want = Int(min(Int64(max), src.length - Int64(sent)))
        if want <= 0 { return 0 }
        var r = pread(src.fd, ptr, want, off_t(src.offset + Int64(sent)))
        while r < 0 && errno == EINTR { r = pread(src.fd, ptr, want, off_t(src.offset + Int64(sent))) }
        if r <= 0 { return Int(CURL_READFUNC_ABORT) }
        sent += r
        if let onBytes, !onBytes(Int64(r)) {
            aborted = true
            return Int(CURL_READFUNC_ABORT)
        }
        return r
    }
}
