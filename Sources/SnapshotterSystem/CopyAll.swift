#if canImport(Glibc)
import Glibc
#endif
import CShim

extension Sys {
    /// Copies the whole of `src` into `dst` from offset 0: the kernel's
    /// copy_file_range where it can (a reflink on file systems that share
    /// extents), plain reads and writes where it cannot.
    package static func copyAll(from src: Int32, _ srcName: String, to dst: Int32, _ dstName: String) throws {
        let size = Int64(try Sys.fstat(src, srcName).st_size)
        var inOff: Int64 = 0
        var outOff: Int64 = 0
        while inOff < size {
            let n = cshim_copy_file_range(src, &inOff, dst, &outOff, Int(min(size - inOff, 1 << 30)))
            if n > 0 { continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        guard inOff < size else { return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        guard let base = buffer.baseAddress else { return }
        while inOff < size {
            let r = try Sys.pread(src, base, Int(min(Int64(buffer.count), size - inOff)), inOff, srcName)
            if r == 0 { throw SnapshotterError(.io, "copy \(srcName) to \(dstName): it ended at \(inOff) of \(size) bytes") }
            try Sys.pwriteAll(dst, base, r, outOff, dstName)
            inOff += Int64(r)
            outOff += Int64(r)
        }
    }
}
