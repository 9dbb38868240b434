#if canImport(Glibc)
import Glibc
#endif

/// SPF1, the sparse packing of one file (FORMAT.md section 1):
/// `"SPF1" size:u64 count:u64 (offset:u64 length:u64 data)*`, big-endian.
enum SPF1 {
    static let magic: [UInt8] = [0x53, 0x50, 0x46, 0x31]
    static let headerSize = 20
    static let extentHeaderSize = 16
    static let chunkSize = 1 << 20

    struct Extent: Equatable, Sendable {
        var offset: Int64
        var length: Int64
    }

    struct EncodeResult: Sendable {
        var digest: Digest
        var encodedSize: Int64
        var logicalSize: Int64
        var extents: Int
    }

    /// The data regions of an open file as SEEK_DATA/SEEK_HOLE report them;
    /// a filesystem that does not report holes yields one extent.
    static func extents(of fd: Int32, size: Int64, path: String) throws -> [Extent] {
        if size == 0 { return [] }
        var result: [Extent] = []
        var offset: Int64 = 0
        while offset < size {
            let data: Int64?
            do {
                data = try Sys.seek(fd, offset, Sys.seekData, path)
            } catch let e as SnapshotterError where e.code == .invalidArgument || e.code == .unsupported {
                return [Extent(offset: 0, length: size)]
            }
            guard let start = data, start < size else { break }
            let hole = try Sys.seek(fd, start, Sys.seekHole, path) ?? size
            let end = min(hole, size)
            if end > start { result.append(Extent(offset: start, length: end - start)) }
            offset = end
        }
        return result
    }

    /// Encodes the open file `src` into `dst` (at its current offset) in one
    /// pass, hashing the encoding as it is written. `onBytes` is told how many
    /// source bytes were consumed and may throw to stop.
    static func encode(from src: Int32, size: Int64, to dst: Int32, path: String,
                       buffer: UnsafeMutableRawBufferPointer,
                       onBytes: (Int64) throws -> Void) throws -> EncodeResult {
        let extents = try extents(of: src, size: size, path: path)
        let hasher = XXH3Hasher()
        let base = buffer.baseAddress!
        let capacity = buffer.count
        var used = 0
        var total: Int64 = 0

        func flush() throws {
            guard used > 0 else { return }
            hasher.update(base, used)
            try Sys.writeAll(dst, base, used, "content for \(path)")
            total += Int64(used)
            used = 0
        }
        func put(_ v: UInt64) throws {
            if capacity - used < 8 { try flush() }
            var be = v.bigEndian
            withUnsafeBytes(of: &be) { (base + used).copyMemory(from: $0.baseAddress!, byteCount: 8) }
            used += 8
        }

        (base).copyMemory(from: magic, byteCount: 4)
        used = 4
        try put(UInt64(size))
        try put(UInt64(extents.count))
        for ext in extents {
            try put(UInt64(ext.offset))
            try put(UInt64(ext.length))
            var pos = ext.offset
            let end = ext.offset + ext.length
            while pos < end {
                if used == capacity { try flush() }
                let want = Int(min(Int64(capacity - used), end - pos))
                let n = try Sys.pread(src, base + used, want, pos, path)
                if n == 0 {
                    throw SnapshotterError(.io, "\(path) shrank while it was being read (expected \(size) bytes)")
                }
                used += n
                pos += Int64(n)
                try onBytes(Int64(n))
            }
        }
        try flush()
        return EncodeResult(digest: hasher.digest, encodedSize: total, logicalSize: size, extents: extents.count)
    }

    struct DecodeResult: Sendable {
        var digest: Digest
        var logicalSize: Int64
    }

    /// Decodes the SPF1 stream in `src` (a file of `streamLength` bytes) into
    /// `dst` (nil only checks and hashes), hashing the stream in the same
    /// pass. Every count and bound is checked against the bytes that follow,
    /// so hostile input fails with a clear error and allocates nothing.
    static func decode(from src: Int32, streamLength: Int64, to dst: Int32?, name: String,
                       buffer: UnsafeMutableRawBufferPointer,
                       onBytes: (Int64) throws -> Void) throws -> DecodeResult {
        var reader = StreamReader(fd: src, length: streamLength, buffer: buffer, name: name)
        let hasher = XXH3Hasher()
        guard streamLength >= Int64(headerSize) else {
            throw SnapshotterError.corrupt("\(name): truncated SPF1 header (\(streamLength) bytes)")
        }
        let head = try reader.take(4, hasher)
        if !(head[0] == magic[0] && head[1] == magic[1] && head[2] == magic[2] && head[3] == magic[3]) {
            throw SnapshotterError.corrupt("\(name): bad SPF1 magic")
        }
        let rawSize = try reader.u64(hasher)
        let rawCount = try reader.u64(hasher)
        guard rawSize <= UInt64(Int64.max) else {
            throw SnapshotterError.corrupt("\(name): SPF1 size \(rawSize) is out of range")
        }
        let size = Int64(rawSize)
        let maxCount = UInt64(max(0, streamLength - Int64(headerSize))) / UInt64(extentHeaderSize)
        guard rawCount <= maxCount else {
            throw SnapshotterError.corrupt("\(name): SPF1 extent count \(rawCount) cannot fit in \(streamLength) bytes")
        }
        if let dst {
            do { try Sys.ftruncate(dst, size, name) } catch let e as SnapshotterError where e.code == .invalidArgument || e.code == .io {
                throw SnapshotterError.corrupt("\(name): SPF1 size \(size) cannot be a file here (\(e.message))")
            }
        }
        var previousEnd: Int64 = 0
        for i in 0..<rawCount {
            let rawOffset = try reader.u64(hasher)
            let rawLength = try reader.u64(hasher)
            guard rawOffset <= UInt64(size), rawLength <= UInt64(size) - rawOffset else {
                throw SnapshotterError.corrupt("\(name): SPF1 extent \(i) (offset \(rawOffset), length \(rawLength)) ends past the file size \(size)")
            }
            guard rawLength > 0 else {
                throw SnapshotterError.corrupt("\(name): SPF1 extent \(i) is empty")
            }
            let offset = Int64(rawOffset), length = Int64(rawLength)
            guard offset >= previousEnd else {
                throw SnapshotterError.corrupt("\(name): SPF1 extent \(i) at offset \(offset) overlaps or precedes the previous one ending at \(previousEnd)")
            }
            guard length <= reader.remaining else {
                throw SnapshotterError.corrupt("\(name): SPF1 stream truncated in extent \(i)")
            }
            var pos = offset
            try reader.stream(length, hasher) { ptr, n in
                if let dst { try Sys.pwriteAll(dst, ptr, n, pos, name) }
                pos += Int64(n)
                try onBytes(Int64(n))
            }
            previousEnd = offset + length
        }
        guard reader.remaining == 0 else {
            throw SnapshotterError.corrupt("\(name): \(reader.remaining) bytes of trailing data after the last SPF1 extent")
        }
        return DecodeResult(digest: hasher.digest, logicalSize: size)
    }

    /// Sequential reader over a file of known length that hashes exactly the
    /// bytes it hands out.
    struct StreamReader {
        let fd: Int32
        let length: Int64
        let buffer: UnsafeMutableRawBufferPointer
        let name: String
        var consumed: Int64 = 0
        var start = 0
        var end = 0

        init(fd: Int32, length: Int64, buffer: UnsafeMutableRawBufferPointer, name: String) {
            self.fd = fd
            self.length = length
            self.buffer = buffer
            self.name = name
        }

        var remaining: Int64 { length - consumed }

        private mutating func fill(atLeast n: Int) throws {
            if end - start >= n { return }
            let base = buffer.baseAddress!
            if start > 0 {
                (base).copyMemory(from: base + start, byteCount: end - start)
                end -= start
                start = 0
            }
            while end - start < n {
                let r = try Sys.read(fd, base + end, buffer.count - end, name)
                if r == 0 { throw SnapshotterError.corrupt("\(name): SPF1 stream truncated") }
                end += r
            }
        }

        mutating func take(_ n: Int, _ hasher: XXH3Hasher) throws -> [UInt8] {
            guard Int64(n) <= remaining else { throw SnapshotterError.corrupt("\(name): SPF1 stream truncated") }
            try fill(atLeast: n)
            let p = buffer.baseAddress! + start
            hasher.update(p, n)
            start += n
            consumed += Int64(n)
            return Array(UnsafeRawBufferPointer(start: p, count: n))
        }

        mutating func u64(_ hasher: XXH3Hasher) throws -> UInt64 {
            guard 8 <= remaining else { throw SnapshotterError.corrupt("\(name): SPF1 stream truncated") }
            try fill(atLeast: 8)
            let p = buffer.baseAddress! + start
            hasher.update(p, 8)
            var v: UInt64 = 0
            withUnsafeMutableBytes(of: &v) { $0.baseAddress!.copyMemory(from: p, byteCount: 8) }
            start += 8
            consumed += 8
            return UInt64(bigEndian: v)
        }

        /// Hands out `count` bytes in buffer-sized pieces.
        mutating func stream(_ count: Int64, _ hasher: XXH3Hasher,
                             _ body: (UnsafeRawPointer, Int) throws -> Void) throws {
            var left = count
            while left > 0 {
                if start == end {
                    start = 0
                    end = 0
                    let r = try Sys.read(fd, buffer.baseAddress!, buffer.count, name)
                    if r == 0 { throw SnapshotterError.corrupt("\(name): SPF1 stream truncated") }
                    end = r
                }
                let n = Int(min(Int64(end - start), left))
                let p = UnsafeRawPointer(buffer.baseAddress! + start)
                hasher.update(p, n)
                try body(p, n)
                start += n
                consumed += Int64(n)
                left -= Int64(n)
            }
        }
    }
}
