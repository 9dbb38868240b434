import SnapshotterSystem
import SnapshotterStore
/// The snapshot config, the OCI config blob of FORMAT.md section 4.
public enum SnapshotConfig {
    public static let mediaType = "application/vnd.cncf.dragonfly.snapshotter.config.v1+json"
    /// The default limit of a config's size (StoreOptions.maxConfigBytes).
    public static let defaultMaxBytes = 512 << 20
    /// Below 4 GiB: the store's record keeps the config with a 32-bit length.
    public static let maxBytesRange = (64 << 10)...(3 << 30)

    /// Encodes the files sorted by relative path, field for field as the Go
    /// version writes them, so the same inputs give the same bytes.
    public static func encode(_ files: [SnapshotFile]) -> [UInt8] {
        encode(sorted: FileList(files.sorted(by: { PathGuard.precedes($0.relativePath, $1.relativePath) })))
    }

    /// The same, of files already sorted by path.
    package static func encode(sorted files: FileList) -> [UInt8] {
        var out: [UInt8] = []
        // About 190 bytes a file besides its path: one allocation, no growth.
        out.reserveCapacity(files.indices.reduce(16) { $0 &+ 192 &+ files[$1].relativePath.utf8.count })
        encode(sorted: files) { out.append(contentsOf: $0) }
        return out
    }

    /// The same, handed to `sink` in pieces of about 64 KiB: a record's
    /// config goes straight into LMDB's pages, with no buffer of its size
    /// (at many files it is several times the list it describes).
    package static func encode(sorted files: FileList, to sink: (UnsafeRawBufferPointer) -> Void) {
        var w = JSONWriter()
        w.bytes.reserveCapacity(Self.pieceBytes + 16 << 10)
        w.raw(Piece.open)
        for i in files.indices {
            if i > 0 { w.raw(Piece.comma) }
            appendEntry(files[i], to: &w)
            if w.bytes.count >= Self.pieceBytes {
                w.bytes.withUnsafeBytes(sink)
                w.bytes.removeAll(keepingCapacity: true)
            }
        }
        w.raw(Piece.close)
        w.bytes.withUnsafeBytes(sink)
    }

    static let pieceBytes = 64 << 10

    /// The literal parts of a config, shared by the writer and by
    /// `encodedSize`, which counts them.
    enum Piece {
        static let open: StaticString = "{\"files\":["
        static let close: StaticString = "]}"
        static let comma: StaticString = ","
        // A digest's text is "xxh3:" and hex digits: nothing to escape.
        static let digest: StaticString = "{\"digest\":\"xxh3:"
        static let readOnly: StaticString = "\",\"readOnly\":true,\"relativePath\":"
        static let readWrite: StaticString = "\",\"readOnly\":false,\"relativePath\":"
        static let mode: StaticString = ",\"metadata\":{\"mode\":"
        static let uid: StaticString = ",\"uid\":"
        static let gid: StaticString = ",\"gid\":"
        static let size: StaticString = ",\"size\":"
        static let mtime: StaticString = ",\"mtime\":\""
        static let typeflag: StaticString = "\",\"typeflag\":"
        static let end: StaticString = "}}"
    }

    static func appendEntry(_ f: SnapshotFile, to w: inout JSONWriter) {
        // Most paths need no escaping: the entry is then written in one
        // piece, field by field at a cursor, and appended once.
        let written = f.relativePath.utf8.withContiguousStorageIfAvailable { path -> Bool in
            guard JSONWriter.isPlain(path) else { return false }
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.entryRoom + path.count) { buffer in
                guard let base = buffer.baseAddress else { return }
                w.bytes.append(contentsOf: UnsafeBufferPointer(start: base, count: writeEntry(f, plainPath: path, to: base)))
            }
            return true
        }
        if written != true { appendEntryEscaped(f, to: &w) }
    }

    /// The room an entry may need besides its path's bytes.
    static let entryRoom = 256 + 4 * DecimalText.room + RFC3339.room

    /// An entry whose path needs no escaping, written at `out` (which has
    /// `entryRoom` bytes and the path's); returns how many bytes.
    private static func writeEntry(_ f: SnapshotFile, plainPath path: UnsafeBufferPointer<UInt8>,
                                   to out: UnsafeMutablePointer<UInt8>) -> Int {
        var n = 0
        func put(_ s: StaticString) {
            (out + n).update(from: s.utf8Start, count: s.utf8CodeUnitCount)
            n += s.utf8CodeUnitCount
        }
        func number(_ v: Int64) { n += DecimalText.write(v, to: out + n) }
        put(Piece.digest)
        n += f.digest.writeHex(to: out + n)
        put(f.readOnly ? Piece.readOnly : Piece.readWrite)
        out[n] = UInt8(ascii: "\"")
        if let p = path.baseAddress { (out + n + 1).update(from: p, count: path.count) }
        out[n + 1 + path.count] = UInt8(ascii: "\"")
        n += path.count + 2
        put(Piece.mode)
        number(Int64(f.mode))
        put(Piece.uid)
        number(Int64(f.uid))
        put(Piece.gid)
        number(Int64(f.gid))
        put(Piece.size)
        number(f.size)
        put(Piece.mtime)
        n += RFC3339.write(nanos: f.mtimeNanos, to: out + n)
        put(Piece.typeflag)
        number(Int64(f.typeflag))
        put(Piece.end)
        return n
    }

    /// The same field by field, with the path escaped.
    static func appendEntryEscaped(_ f: SnapshotFile, to w: inout JSONWriter) {
        w.raw(Piece.digest)
        f.digest.appendHex(to: &w.bytes)
        w.raw(f.readOnly ? Piece.readOnly : Piece.readWrite)
        w.string(f.relativePath)
        w.raw(Piece.mode)
        w.number(Int64(f.mode))
        w.raw(Piece.uid)
        w.number(Int64(f.uid))
        w.raw(Piece.gid)
        w.number(Int64(f.gid))
        w.raw(Piece.size)
        w.number(f.size)
        w.raw(Piece.mtime)
        // Digits, '-', ':', '.', 'T' and 'Z' need no escaping.
        RFC3339.append(nanos: f.mtimeNanos, to: &w.bytes)
        w.raw(Piece.typeflag)
        w.number(Int64(f.typeflag))
        w.raw(Piece.end)
    }

    /// Decodes a config from a registry or another implementation: unknown
    /// fields are ignored, any order is accepted, and every path is checked
    /// before anything is returned.
    public static func decode(_ bytes: [UInt8]) throws -> [SnapshotFile] {
        var files: [SnapshotFile] = []
        var total: Int64 = 0
        var reader = ConfigReader(bytes)
        let count = try reader.forEachFile { i, item in
            func bad(_ what: String) -> SnapshotterError {
                SnapshotterError.invalid("snapshot config file \(i): \(what)")
            }
            guard let rawPath = item["relativePath"]?.stringValue else { throw bad("missing relativePath") }
            let path: String
            do { path = try PathGuard.normalize(rawPath) } catch let e as SnapshotterError { throw e.context("snapshot config file \(i)") }
            guard let digestText = item["digest"]?.stringValue else { throw bad("missing digest") }
            let digest = try Digest(parsing: digestText)
            let readOnly = item["readOnly"]?.boolValue ?? false
            let meta = item["metadata"] ?? .object([])
            /// An integer field: absent or null is `fallback`; anything else
            /// must be an integer in `range`.
            func integer(_ name: String, _ fallback: Int64?, _ range: ClosedRange<Int64>) throws -> Int64 {
                guard let v = meta[name], !v.isNull else {
                    guard let fallback else { throw bad("missing \(name)") }
                    return fallback
                }
                guard let n = v.int64Value, range.contains(n) else {
                    throw bad("\(name) \(v.numberText ?? "(not a number)") is not an integer in \(range.lowerBound)...\(range.upperBound)")
                }
                return n
            }
            let mode = try integer("mode", 0o644, 0...0o7777)
            let uid = try integer("uid", 0, 0...Int64(UInt32.max))
            let gid = try integer("gid", 0, 0...Int64(UInt32.max))
            let size = try integer("size", nil, 0...Int64.max)
            let typeflag = try integer("typeflag", 0, 0...255)
            guard typeflag == 0 || typeflag == 48 else { throw bad("type flag \(typeflag) is not a regular file") }
            let (newTotal, overflow) = total.addingReportingOverflow(size)
            guard !overflow else { throw bad("size \(size) makes the total size exceed \(Int64.max) bytes") }
            total = newTotal
            var mtime: Int64 = 0
            if let m = meta["mtime"], !m.isNull {
                guard let text = m.stringValue else { throw bad("mtime is not a string") }
                do { mtime = try RFC3339.parse(text) } catch let e as SnapshotterError { throw e.context("snapshot config file \(i): mtime") }
            }
            files.append(SnapshotFile(relativePath: path, digest: digest, readOnly: readOnly, mode: UInt32(mode & 0o777),
                                      uid: UInt32(uid), gid: UInt32(gid), size: size, mtimeNanos: mtime, typeflag: 0))
        }
        if count == nil { return [] }
        try checkNoFileIsADirectory(files)
        return files
    }

    /// A path listed twice (by its bytes), or that is also a parent of
    /// another path, cannot be restored.
    package static func checkNoFileIsADirectory(_ files: [SnapshotFile]) throws {
        var order = Array(files.indices)
        order.sort { PathGuard.precedes(files[$0].relativePath, files[$1].relativePath) }
        for k in order.indices.dropFirst() where PathGuard.same(files[order[k - 1]].relativePath, files[order[k]].relativePath) {
            let path = files[order[k]].relativePath
            throw SnapshotterError.invalid("snapshot config file \(Swift.max(order[k - 1], order[k])): path \(path.debugDescription) appears twice")
        }
        try checkNoFileIsADirectory(sortedPaths: order.map { files[$0].relativePath })
    }

    /// The same check for paths sorted by their bytes, from the directories'
    /// side: each directory the paths name (a parent is taken once for a
    /// run of paths in it) is looked for among the paths by binary search,
    /// so the cost follows the number of directories, not of files. Paths
    /// are compared as bytes (PathGuard.withBytes).
    package static func checkNoFileIsADirectory(sortedPaths paths: [String]) throws {
        try checkNoFileIsADirectory(count: paths.count) { paths[$0] }
    }

    /// The same, the paths given by index (a caller's list need not be
    /// copied into one of paths).
    package static func checkNoFileIsADirectory(count: Int, sortedPath path: (Int) -> String) throws {
        try withoutActuallyEscaping(path) { path in try checkNoFileIsADirectory(PathsByIndex(count: count, path: path)) }
    }

    private static func checkNoFileIsADirectory(_ paths: PathsByIndex) throws {
        // Each directory, with the index of a path inside it.
        var directories: [[UInt8]: Int] = [:]
        var lastParent: [UInt8]?
        for i in paths.indices {
            let parent: [UInt8]? = PathGuard.withBytes(paths[i]) { b in
                guard let slash = b.lastIndex(of: UInt8(ascii: "/")) else { return nil }
                let bytes = UnsafeBufferPointer(rebasing: b[..<slash])
                if let last = lastParent, bytes.elementsEqual(last) { return nil }
                return Array(bytes)
            }
            guard var d = parent else { continue }
            lastParent = d
            while directories[d] == nil {
                directories[d] = i
                guard let up = d.lastIndex(of: UInt8(ascii: "/")) else { break }
                d.removeSubrange(up...)
            }
        }
        for (d, inside) in directories {
            let found = d.withUnsafeBufferPointer { db -> Int? in
                var low = 0, high = paths.count
                while low < high {
                    let mid = low + (high - low) / 2
                    if PathGuard.withBytes(paths[mid], { PathGuard.precedes($0, db) }) { low = mid + 1 } else { high = mid }
                }
                return low < paths.count && PathGuard.withBytes(paths[low], { $0.elementsEqual(db) }) ? low : nil
            }
            if let f = found {
                throw SnapshotterError.invalid("path \(paths[f].debugDescription) is both a file and the directory of \(paths[inside].debugDescription)")
            }
        }
    }
}

/// Paths read by index, for `checkNoFileIsADirectory`.
private struct PathsByIndex {
    let count: Int
    let path: (Int) -> String
    var indices: Range<Int> { 0..<count }
    subscript(_ i: Int) -> String { path(i) }
}

/// RFC 3339 timestamps with up to nine fractional digits, as Go's
/// `time.Time` writes them in JSON. We always write UTC.
package enum RFC3339 {
    package static func format(nanos: Int64) -> String {
        var out: [UInt8] = []
        append(nanos: nanos, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `format` as bytes appended to `out`: fields zero-padded (a year as
    /// `String` writes it, padded to four), the fraction without trailing
    /// zeros and only when not zero, as Go writes it.
    package static func append(nanos: Int64, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: room) { buffer in
            guard let base = buffer.baseAddress else { return }
            out.append(contentsOf: UnsafeBufferPointer(start: base, count: write(nanos: nanos, to: base)))
        }
    }

    /// The bytes `write` may need: Int64 nanoseconds stay within the years
    /// 1677-2262, so 30 ("2006-01-02T15:04:05.999999999Z") and each
    /// field's room to spare.
    static let room = 7 * DecimalText.room

    /// `append`'s bytes written at `out`, which has `room` bytes; returns
    /// how many.
    static func write(nanos: Int64, to out: UnsafeMutablePointer<UInt8>) -> Int {
        var secs = nanos / 1_000_000_000
        var frac = nanos % 1_000_000_000
        if frac < 0 { frac += 1_000_000_000; secs -= 1 }
        var days = secs / 86_400
        var rem = secs % 86_400
        if rem < 0 { rem += 86_400; days -= 1 }
        let (y, m, d) = civil(fromDays: days)
        var n = DecimalText.write(y, width: 4, to: out)
        func field(_ separator: UInt8, _ v: Int64, width: Int) {
            out[n] = separator
            n += 1 + DecimalText.write(v, width: width, to: out + n + 1)
        }
        field(UInt8(ascii: "-"), m, width: 2)
        field(UInt8(ascii: "-"), d, width: 2)
        field(UInt8(ascii: "T"), rem / 3600, width: 2)
        field(UInt8(ascii: ":"), rem / 60 % 60, width: 2)
        field(UInt8(ascii: ":"), rem % 60, width: 2)
        if frac != 0 {
            var width = 9
            while frac % 10 == 0 { frac /= 10; width -= 1 }
            field(UInt8(ascii: "."), frac, width: width)
        }
        out[n] = UInt8(ascii: "Z")
        return n + 1
    }

    package static func parse(_ text: String) throws -> Int64 {
        let b = Array(text.utf8)
        func fail() -> SnapshotterError { SnapshotterError.invalid("time \(text.debugDescription) is not RFC 3339") }
        func num(_ from: Int, _ len: Int) throws -> Int64 {
            guard from + len <= b.count else { throw fail() }
            var v: Int64 = 0
            for i in from..<(from + len) {
                guard (0x30...0x39).contains(b[i]) else { throw fail() }
                v = v * 10 + Int64(b[i] - 0x30)
            }
            return v
        }
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
              b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
              b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":") else { throw fail() }
        let y = try num(0, 4), mo = try num(5, 2), d = try num(8, 2)
        let h = try num(11, 2), mi = try num(14, 2), s = try num(17, 2)
        guard (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61 else { throw fail() }
        var i = 19
        var frac: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < b.count, (0x30...0x39).contains(b[i]) {
                if digits < 9 { frac = frac * 10 + Int64(b[i] - 0x30) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { throw fail() }
            for _ in min(digits, 9)..<9 { frac *= 10 }
        }
        var offset: Int64 = 0
        guard i < b.count else { throw fail() }
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign: Int64 = b[i] == UInt8(ascii: "-") ? -1 : 1
            guard i + 6 == b.count, b[i + 3] == UInt8(ascii: ":") else { throw fail() }
            offset = sign * (try num(i + 1, 2) * 3600 + num(i + 4, 2) * 60)
            i += 6
        } else {
            throw fail()
        }
        guard i == b.count else { throw fail() }
        let days = daysFromCivil(y, mo, d)
        let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset
        // Before the epoch the fraction is taken from the next second, so
        // the earliest instant (1677) does not overflow on the way.
        let borrow: Int64 = secs < 0 && frac > 0 ? 1 : 0
        let (r, o) = (secs + borrow).multipliedReportingOverflow(by: 1_000_000_000)
        let (ns, o2) = r.addingReportingOverflow(frac - borrow * 1_000_000_000)
        guard !o, !o2 else {
            throw SnapshotterError.invalid("time \(text.debugDescription) is out of range (\(format(nanos: .min)) to \(format(nanos: .max)))")
        }
        return ns
    }

    // Howard Hinnant's civil-date algorithms.
    package static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    package static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
