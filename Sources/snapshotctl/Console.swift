import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

/// Terminal output: the live progress line, one-line errors, units.
enum Console {
    static let isTerminal = isatty(2) == 1

    /// Writes straight to fd 2 (unbuffered, and no shared C `FILE *`).
    static func writeErr(_ text: String) {
        var bytes = Array(text.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + off, $0.count - off) }
            if n <= 0 { return }
            off += n
        }
    }

    static func error(_ line: String) {
        writeErr(line + "\n")
    }

    static func clearLine() {
        if isTerminal { writeErr("\r\u{1B}[2K") }
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// A progress handler drawing one live line on stderr, or nil when
    /// quiet or not on a terminal.
    static func meter(quiet: Bool, verb: String) -> ProgressHandler? {
        guard isTerminal && !quiet else { return nil }
        let started = now()
        return { e in
            let elapsed = max(now() - started, 1e-6)
            let rate = Double(e.bytesDone) / elapsed
            let line = "\r\u{1B}[2K\(verb): \(e.filesDone)/\(e.filesTotal) files, \(bytes(e.bytesDone))/\(bytes(e.bytesTotal)), \(bytes(Int64(rate)))/s"
            writeErr(line)
            return true
        }
    }

    static func readFile(_ path: String) -> String? {
        readBytes(path).map { String(decoding: $0, as: UTF8.self) }
    }

    static func readBytes(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        // One allocation of the file's size, not copies grown by doubling.
        var st = stat()
        if fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < Int.max / 2 { out.reserveCapacity(Int(st.st_size)) }
        guard (try? forEachPiece(fd, path, { out += $0 })) != nil else { return nil }
        return out
    }

    /// `ro PATH` / `rw PATH` lines; blank lines and # comments skipped.
    /// Read in pieces, twice when the file can be read again (its lines
    /// counted first, so the list is one allocation of its final size): a
    /// list of a million files is never resident beside the whole text.
    static func fileList(_ path: String) throws -> [FileRequest] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw SnapshotterError(.invalidArgument, "cannot read the file list \(path)") }
        defer { close(fd) }
        var lines = 0
        let seekable = lseek(fd, 0, SEEK_CUR) >= 0
        if seekable {
            try forEachPiece(fd, path) { piece in lines += piece.count(where: { $0 == UInt8(ascii: "\n") }) }
            guard lseek(fd, 0, SEEK_SET) == 0 else { throw SnapshotterError(.invalidArgument, "cannot read the file list \(path)") }
        }
        var out: [FileRequest] = []
        out.reserveCapacity(lines + 1)
        var number = 0
        var carry: [UInt8] = []
        func parse(_ line: UnsafeBufferPointer<UInt8>) throws {
            number += 1
            var line = line[...]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.isEmpty || line.first == UInt8(ascii: "#") { return }
            let kind = line.prefix(3)
            let readOnly: Bool
            if kind.elementsEqual("ro ".utf8) { readOnly = true }
            else if kind.elementsEqual("rw ".utf8) { readOnly = false }
            else { throw SnapshotterError(.invalidArgument, "\(path):\(number): expected 'ro PATH' or 'rw PATH'") }
            out.append(FileRequest(String(decoding: UnsafeBufferPointer(rebasing: line.dropFirst(3)), as: UTF8.self), readOnly: readOnly))
        }
        // Split as bytes in place; a line cut by a piece's end is carried.
        try forEachPiece(fd, path) { piece in
            var start = 0
            for i in piece.indices where piece[i] == UInt8(ascii: "\n") {
                if carry.isEmpty {
                    try parse(UnsafeBufferPointer(rebasing: piece[start..<i]))
                } else {
                    carry += piece[start..<i]
                    try carry.withUnsafeBufferPointer { try parse($0) }
                    carry = []
                }
                start = i + 1
            }
            carry += piece[start...]
        }
        if !carry.isEmpty { try carry.withUnsafeBufferPointer { try parse($0) } }
        return out
    }

    /// Reads `fd` to its end in 64 KiB pieces.
    private static func forEachPiece(_ fd: Int32, _ path: String, _ body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        let buf = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 65536)
        defer { buf.deallocate() }
        while true {
            let n = read(fd, buf.baseAddress, buf.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw SnapshotterError(.invalidArgument, "cannot read the file list \(path)") }
            if n == 0 { return }
            try body(UnsafeBufferPointer(rebasing: buf[..<n]))
        }
    }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(n) B" : "\(Double(Int(v * 10)) / 10) \(units[i])"
    }

    static func seconds(_ s: Double) -> String {
        s < 1 ? "\(Int(s * 1000)) ms" : "\(Double(Int(s * 100)) / 100) s"
    }

    static func time(_ nanos: Int64) -> String {
        var t = time_t(nanos / 1_000_000_000)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        var buf = [CChar](repeating: 0, count: 32)
        let n = strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &tmv)
        return String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if u.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
