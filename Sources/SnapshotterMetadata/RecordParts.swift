import SnapshotterSystem
import SnapshotterStore

/// Version 3 of a snapshot record: the record is a header, and the files
/// are in parts of at most `partFiles` files each, in the `parts` table
/// under `name:version`, a zero byte and the part's number (4 bytes, big
/// endian). A part is its file count (4 bytes) and that many file entries
/// as versions 1 and 2 write them; the parts in order are the files in path
/// order. A snapshot of many files is written a group of parts at a time,
/// each group its own transaction, under a header that says it is being
/// written (and by which lease): until the last transaction marks it
/// complete it is no snapshot (not listed, restored or deleted), and once
/// its writer's lease is gone the collector drops what it wrote.
extension SnapshotRecord {
    /// Files in one part: a part is ~250 KB at short paths, freed as a
    /// whole when the snapshot goes.
    package static let partFiles = 4096

    /// A version 3 record.
    package struct Header: Sendable, Equatable {
        package var created: Int64
        /// Files in the parts written so far (all of them once complete).
        package var count: Int
        package var parts: Int
        /// The key of the lease of the operation writing it, while it is
        /// being written; nil once complete.
        package var writer: [UInt8]?
        /// The config as published, when it is not the canonical one.
        package var given: [UInt8]?

        package init(created: Int64, count: Int, parts: Int, writer: [UInt8]?, given: [UInt8]?) {
            self.created = created
            self.count = count
            self.parts = parts
            self.writer = writer
            self.given = given
        }

        package func encode() throws -> [UInt8] {
            guard let count = UInt32(exactly: count), let parts = UInt32(exactly: parts),
                  (given?.count ?? 0) <= Int(UInt32.max), (writer?.count ?? 0) <= Int(UInt32.max) else {
                throw SnapshotterError.invalid("a snapshot of \(self.count) files in \(self.parts) parts does not fit a metadata record")
            }
            var w = ByteWriter()
            w.u8(3)
            w.i64(created)
            w.u32(count)
            w.u32(parts)
            for field in [writer, given] {
                if let field { w.u8(1); w.blob(field) } else { w.u8(0) }
            }
            return w.bytes
        }

        /// The header of a version 3 record; nil for a record of another
        /// version (`walk` reads those).
        package static func decode(_ bytes: UnsafeRawBufferPointer, key: String) throws -> Header? {
            var r = ByteReader(bytes, what: "snapshot \(key)")
            guard try r.u8() == 3 else { return nil }
            var h = Header(created: try r.i64(), count: Int(try r.u32()), parts: Int(try r.u32()), writer: nil, given: nil)
            var fields: [[UInt8]?] = []
            for name in ["writer", "config"] {
                switch try r.u8() {
                case 0: fields.append(nil)
                case 1: fields.append(try r.blob())
                case let flag: throw r.fail("\(name) flag \(flag) is not 0 or 1")
                }
            }
            (h.writer, h.given) = (fields[0], fields[1])
            guard r.atEnd else { throw r.fail() }
            // Every part holds a file at least.
            guard h.parts <= h.count else { throw r.fail("\(h.parts) parts for \(h.count) files") }
            return h
        }
    }

    /// Whether `bytes` is a version 3 record still being written.
    package static func isBeingWritten(_ bytes: UnsafeRawBufferPointer, key: String) throws -> Bool {
        try Header.decode(bytes, key: key)?.writer != nil
    }

    /// The key of part `index` of the snapshot whose key is `key`.
    package static func partKey(_ key: [UInt8], _ index: Int) -> [UInt8] {
        var w = ByteWriter()
        w.bytes.reserveCapacity(key.count + 5)
        w.bytes += key
        w.u8(0)
        w.u32(UInt32(truncatingIfNeeded: index))
        return w.bytes
    }

    /// The size `writePart` writes for `files[range]`.
    package static func partSize(_ files: FileList, _ range: Range<Int>) -> Int {
        range.reduce(4) { $0 &+ entryBytes &+ files[$1].relativePath.utf8.count }
    }

    /// Writes `files[range]` as a part.
    package static func writePart<W: ByteSink>(to w: inout W, _ files: FileList, _ range: Range<Int>) {
        w.u32(UInt32(truncatingIfNeeded: range.count))
        writeEntries(to: &w, files, range)
    }

    /// The files of a version 3 record, part by part: `part(i)` gives part
    /// `i`'s bytes (nil when it is missing, which is corrupt); `file` gets
    /// each file with its part and the offset of its entry there.
    static func walkParts(_ h: Header, key: String, part: (Int) throws -> UnsafeRawBufferPointer?,
                          release: ((UnsafeRawBufferPointer) -> Void)?, counted: (Int) -> Void,
                          file: (Int, Int, SnapshotFile) throws -> Void) throws -> Int64 {
        // The counts first, each bounded by its part's bytes: the total
        // is checked before anything is reserved for it.
        var sum = 0
        for i in 0..<h.parts {
            guard let bytes = try part(i) else { throw SnapshotterError.corrupt("metadata record snapshot \(key) is malformed: part \(i) of \(h.parts) is missing") }
            var r = ByteReader(bytes, what: "snapshot \(key) part \(i)")
            let n = Int(try r.u32())
            guard n > 0, n <= (bytes.count - 4) / entryBytes else { throw r.fail("\(n) files in \(bytes.count) bytes") }
            sum += n
        }
        guard sum == h.count else {
            throw SnapshotterError.corrupt("metadata record snapshot \(key) is malformed: its parts hold \(sum) files, its header says \(h.count)")
        }
        counted(sum)
        var total: Int64 = 0
        for i in 0..<h.parts {
            guard let bytes = try part(i) else { throw SnapshotterError.corrupt("metadata record snapshot \(key) is malformed: part \(i) is missing") }
            var r = ByteReader(bytes, what: "snapshot \(key) part \(i)")
            let n = Int(try r.u32())
            for _ in 0..<n {
                let at = r.i
                try file(i, at, try decodeFile(&r, total: &total))
            }
            guard r.atEnd else { throw r.fail() }
            release?(bytes)
        }
        return total
    }
}
