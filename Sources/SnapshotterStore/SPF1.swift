#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem

/// SPF1, the sparse packing of one file (FORMAT.md section 1):
/// `"SPF1" size:u64 count:u64 (offset:u64 length:u64 data)*`, big-endian.
package enum SPF1 {
    package static let magic: [UInt8] = [0x53, 0x50, 0x46, 0x31]
    package static let headerSize = 20
    package static let extentHeaderSize = 16
    package static let chunkSize = 1 << 20

    package struct Extent: Equatable, Sendable {
        package var offset: Int64
        package var length: Int64
    }

    package struct EncodeResult: Sendable {
        package var digest: Digest
        package var encodedSize: Int64
        package var logicalSize: Int64
        package var extents: Int
    }

    /// The data regions of an open file as SEEK_DATA/SEEK_HOLE report them;
    /// a filesystem that does not report holes yields one extent.
    package static func extents(of fd: Int32, size: Int64, path: String) throws -> [Extent] {
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
    /// source bytes were consumed and may throw to stop. Write errors name
    /// `output` when given (the file written, not the one read).
    package static func encode(from src: Int32, size: Int64, to dst: Int32, path: String, output: String? = nil,
                       buffer: UnsafeMutableRawBufferPointer,
                       onBytes: (Int64) throws -> Void) throws -> EncodeResult {
        let extents = try extents(of: src, size: size, path: path)
        let hasher = XXH3Hasher()
        let base = buffer.baseAddress!
        let capacity = buffer.count
        var used = 0
        var total: Int64 = 0
        let written = output ?? "content for \(path)"

        func flush() throws {
            guard used > 0 else { return }
            hasher.update(base, used)
            try Sys.writeAll(dst, base, used, written)
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

    package struct DecodeResult: Sendable {
        package var digest: Digest
        package var logicalSize: Int64
    }

    /// Decodes the SPF1 stream in `src` (a file of `streamLength` bytes) into
    /// `dst` (nil only checks and hashes), hashing the stream in the same
    /// pass. Every count and bound is checked against the bytes that follow,
    /// so hostile input fails with a clear error and allocates nothing.
    package static func decode(from src: Int32, streamLength: Int64, to dst: Int32?, name: String, output: String? = nil,
                       buffer: UnsafeMutableRawBufferPointer,
                       onBytes: (Int64) throws -> Void) throws -> DecodeResult {
        guard streamLength >= Int64(headerSize) else {
            throw SnapshotterError.corrupt("\(name): truncated SPF1 header (\(streamLength) bytes)")
        }
        var decoder = Decoder(name: name, to: dst, streamLength: streamLength, output: output)
        var left = streamLength
        while left > 0 {
            let r = try Sys.read(src, buffer.baseAddress!, Int(min(Int64(buffer.count), left)), name)
            if r == 0 { throw SnapshotterError.corrupt("\(name): SPF1 stream truncated") }
            try decoder.feed(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: r), onBytes: onBytes)
            left -= Int64(r)
        }
        return try decoder.finish()
    }

    /// An SPF1 decoder fed the stream's bytes as they come, in pieces of any
    /// size (from a file, or from a download as it arrives). It hashes
    /// exactly the bytes of the stream and writes each extent's data into
    /// `dst` at its offset. With `streamLength` known, counts and extents
    /// are checked against it before any of their bytes arrive; either way
    /// nothing is allocated from a count.
    package struct Decoder {
        private enum State { case header, extentHeader, data, done }

        package let name: String
        package let dst: Int32?
        package let streamLength: Int64?
        /// What write errors name: the file written, not the stream read.
        package let output: String
        private let hasher = XXH3Hasher()
        private var state = State.header
        /// The header or extent header being gathered.
        private var head: (UInt64, UInt64, UInt64) = (0, 0, 0)
        private var headBytes = 0
        private var size: Int64 = 0
        private var count: UInt64 = 0
        private var index: UInt64 = 0
        private var pos: Int64 = 0
        private var extentEnd: Int64 = 0
        private var previousEnd: Int64 = 0
        /// Stream bytes taken so far.
        private(set) var consumed: Int64 = 0

        package init(name: String, to dst: Int32?, streamLength: Int64? = nil, output: String? = nil) {
            self.name = name
            self.dst = dst
            self.streamLength = streamLength
            self.output = output ?? name
        }

        private func corrupt(_ what: String) -> SnapshotterError {
            SnapshotterError.corrupt("\(name): \(what)")
        }

        /// Takes the next bytes of the stream; `onBytes` is told of extent
        /// data written and may throw to stop.
        package mutating func feed(_ bytes: UnsafeRawBufferPointer, onBytes: (Int64) throws -> Void = { _ in }) throws {
            guard var p = bytes.baseAddress else { return }
            var n = bytes.count
            while n > 0 {
                switch state {
                case .header, .extentHeader:
                    let want = state == .header ? headerSize : extentHeaderSize
                    let k = min(want - headBytes, n)
                    withUnsafeMutableBytes(of: &head) { $0.baseAddress!.advanced(by: headBytes).copyMemory(from: p, byteCount: k) }
                    hasher.update(p, k)
                    headBytes += k
                    consumed += Int64(k)
                    p += k
                    n -= k
                    if headBytes == want {
                        headBytes = 0
                        if state == .header { try parseHeader() } else { try parseExtent() }
                    }
                case .data:
                    let k = Int(min(Int64(n), extentEnd - pos))
                    hasher.update(p, k)
                    if let dst { try Sys.pwriteAll(dst, p, k, pos, output) }
                    pos += Int64(k)
                    consumed += Int64(k)
                    p += k
                    n -= k
                    try onBytes(Int64(k))
                    if pos == extentEnd {
                        previousEnd = extentEnd
                        index += 1
                        state = index == count ? .done : .extentHeader
                    }
                case .done:
                    let extra = streamLength.map { $0 - consumed } ?? Int64(n)
                    throw corrupt("\(extra) bytes of trailing data after the last SPF1 extent")
                }
            }
        }

        /// The digest and size, once the whole stream has been fed.
        package func finish() throws -> DecodeResult {
            switch state {
            case .header: throw corrupt("truncated SPF1 header (\(consumed) bytes)")
            case .extentHeader: throw corrupt("SPF1 stream truncated")
            case .data: throw corrupt("SPF1 stream truncated in extent \(index)")
            case .done: return DecodeResult(digest: hasher.digest, logicalSize: size)
            }
        }

        /// The header as stored: "SPF1" then size and count, big-endian.
        private var headWords: (magic: UInt32, a: UInt64, b: UInt64) {
            withUnsafeBytes(of: head) { raw in
                func u64(_ at: Int) -> UInt64 { UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
                return (raw.loadUnaligned(as: UInt32.self), u64(state == .header ? 4 : 0), u64(state == .header ? 12 : 8))
            }
        }

        private mutating func parseHeader() throws {
            let words = headWords
            var expected: UInt32 = 0
            withUnsafeMutableBytes(of: &expected) { $0.copyBytes(from: magic) }
            guard words.magic == expected else { throw corrupt("bad SPF1 magic") }
            let (rawSize, rawCount) = (words.a, words.b)
            guard rawSize <= UInt64(Int64.max) else { throw corrupt("SPF1 size \(rawSize) is out of range") }
            if let streamLength {
                let maxCount = UInt64(max(0, streamLength - Int64(headerSize))) / UInt64(extentHeaderSize)
                guard rawCount <= maxCount else {
                    throw corrupt("SPF1 extent count \(rawCount) cannot fit in \(streamLength) bytes")
                }
            }
            size = Int64(rawSize)
            count = rawCount
            if let dst {
                // EINVAL or EFBIG: no such file can exist here. Anything
                // else (EIO, ENOSPC) is the output's fault, not the stream's.
                do { try Sys.ftruncate(dst, size, output) } catch let e as SnapshotterError where e.code == .invalidArgument {
                    throw corrupt("SPF1 size \(size) cannot be a file here (\(e.message))")
                }
            }
            state = count == 0 ? .done : .extentHeader
        }

        private mutating func parseExtent() throws {
            let words = headWords
            let (rawOffset, rawLength) = (words.a, words.b)
            guard rawOffset <= UInt64(size), rawLength <= UInt64(size) - rawOffset else {
                throw corrupt("SPF1 extent \(index) (offset \(rawOffset), length \(rawLength)) ends past the file size \(size)")
            }
            guard rawLength > 0 else { throw corrupt("SPF1 extent \(index) is empty") }
            let offset = Int64(rawOffset), length = Int64(rawLength)
            guard offset >= previousEnd else {
                throw corrupt("SPF1 extent \(index) at offset \(offset) overlaps or precedes the previous one ending at \(previousEnd)")
            }
            if let streamLength, length > streamLength - consumed {
                throw corrupt("SPF1 stream truncated in extent \(index)")
            }
            pos = offset
            extentEnd = offset + length
            state = .data
        }
    }
}
