/// Binary encodings of the metadata records. Each starts with a format
/// version byte so the schema can grow; readers reject what they do not know.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func blob(_ b: [UInt8]) { u32(UInt32(b.count)); bytes.append(contentsOf: b) }
    mutating func string(_ s: String) { blob(Array(s.utf8)) }
}

struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var i = 0
    let what: String

    init(_ bytes: UnsafeRawBufferPointer, what: String) {
        self.bytes = bytes
        self.what = what
    }

    func fail(_ detail: String? = nil) -> SnapshotterError {
        SnapshotterError.corrupt("metadata record \(what) is malformed" + (detail.map { ": \($0)" } ?? ""))
    }

    mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - i else { throw fail() }
        defer { i += n }
        return UnsafeRawBufferPointer(rebasing: bytes[i..<(i + n)])
    }

    mutating func u8() throws -> UInt8 { try take(1)[0] }
    mutating func u16() throws -> UInt16 { try take(2).reduce(0) { $0 << 8 | UInt16($1) } }
    mutating func u32() throws -> UInt32 { try take(4).reduce(0) { $0 << 8 | UInt32($1) } }
    mutating func u64() throws -> UInt64 { try take(8).reduce(0) { $0 << 8 | UInt64($1) } }
    mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    mutating func blob() throws -> [UInt8] { Array(try take(Int(try u32()))) }
    mutating func string() throws -> String {
        guard let s = String(validating: try blob(), as: UTF8.self) else { throw fail() }
        return s
    }
    var atEnd: Bool { i == bytes.count }
}

/// A snapshot: `name:version` -> when it was made, its files and its config.
struct SnapshotRecord: Sendable {
    static let formatVersion: UInt8 = 1
    var created: Int64
    var files: [SnapshotFile]
    /// The config JSON exactly as published.
    var config: [UInt8]

    func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.formatVersion)
        w.i64(created)
        w.u32(UInt32(files.count))
        for f in files {
            w.string(f.relativePath)
            w.u64(f.digest.value)
            w.u8(f.readOnly ? 1 : 0)
            w.u32(f.mode)
            w.u32(f.uid)
            w.u32(f.gid)
            w.i64(f.size)
            w.i64(f.mtimeNanos)
            w.u8(f.typeflag)
        }
        w.blob(config)
        return w.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, key: String) throws -> SnapshotRecord {
        var r = ByteReader(bytes, what: "snapshot \(key)")
        guard try r.u8() == formatVersion else { throw r.fail() }
        let created = try r.i64()
        let count = Int(try r.u32())
        guard count <= bytes.count else { throw r.fail() }
        var files: [SnapshotFile] = []
        files.reserveCapacity(count)
        var total: Int64 = 0
        for _ in 0..<count {
            let path = try r.string()
            let digest = Digest(try r.u64())
            let ro = try r.u8() != 0
            let mode = try r.u32(), uid = try r.u32(), gid = try r.u32()
            let size = try r.i64(), mtime = try r.i64()
            let tf = try r.u8()
            let (sum, overflow) = total.addingReportingOverflow(size)
            guard size >= 0, !overflow else { throw r.fail("file size \(size) is negative or makes the total overflow") }
            total = sum
            files.append(SnapshotFile(relativePath: path, digest: digest, readOnly: ro, mode: mode, uid: uid, gid: gid,
                                      size: size, mtimeNanos: mtime, typeflag: tf))
        }
        let config = try r.blob()
        guard r.atEnd else { throw r.fail() }
        return SnapshotRecord(created: created, files: files, config: config)
    }
}

/// What the store knows about one content file.
struct ContentRecord: Sendable, Equatable {
    static let formatVersion: UInt8 = 1
    /// Bytes of the SPF1 encoding (the content file's size).
    var encodedSize: Int64
    /// Logical size of the original file.
    var logicalSize: Int64
    var created: Int64
    /// Whether `storage/snapshot/xxh3/<hex>` (the read-only link) exists.
    var hasLink: Bool

    /// What the content takes in the store: its file, and the read-only
    /// link's bytes when it has one.
    var storeBytes: Int64 { encodedSize.saturatingAdd(hasLink ? logicalSize : 0) }

    func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.formatVersion)
        w.i64(encodedSize)
        w.i64(logicalSize)
        w.i64(created)
        w.u8(hasLink ? 1 : 0)
        return w.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, digest: Digest) throws -> ContentRecord {
        var r = ByteReader(bytes, what: "content \(digest)")
        guard try r.u8() == formatVersion else { throw r.fail() }
        let rec = ContentRecord(encodedSize: try r.i64(), logicalSize: try r.i64(), created: try r.i64(), hasLink: try r.u8() != 0)
        guard rec.encodedSize >= 0, rec.logicalSize >= 0 else {
            throw r.fail("encoded size \(rec.encodedSize) or logical size \(rec.logicalSize) is negative")
        }
        return rec
    }
}

/// The read-only fast path: the inode of a store link -> its digest, with
/// the size, mtime and ctime it had when recorded. Records written before
/// ctime was kept (24 bytes) decode with no ctime: such an inode is not
/// trusted until a snapshot reads it once and records its ctime.
struct InodeRecord: Sendable, Equatable {
    var digest: Digest
    var size: Int64
    var mtimeNanos: Int64
    var ctimeNanos: Int64? = nil

    static func key(dev: UInt64, ino: UInt64) -> [UInt8] {
        var w = ByteWriter()
        w.u64(dev)
        w.u64(ino)
        return w.bytes
    }

    func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u64(digest.value)
        w.i64(size)
        w.i64(mtimeNanos)
        if let ctimeNanos { w.i64(ctimeNanos) }
        return w.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> InodeRecord {
        var r = ByteReader(bytes, what: "inode")
        var rec = InodeRecord(digest: Digest(try r.u64()), size: try r.i64(), mtimeNanos: try r.i64())
        if !r.atEnd { rec.ctimeNanos = try r.i64() }
        guard r.atEnd else { throw r.fail() }
        return rec
    }
}

extension Digest {
    var key: [UInt8] {
        var w = ByteWriter()
        w.u64(value)
        return w.bytes
    }

    init(key: UnsafeRawBufferPointer) throws {
        guard key.count == 8 else { throw SnapshotterError.corrupt("metadata digest key has \(key.count) bytes") }
        self.init(key.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }
}

/// `name:version`, the key of a snapshot (names never contain ':').
struct SnapshotKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    var name: String
    var version: String

    var description: String { "\(name):\(version)" }
    var bytes: [UInt8] { Array(description.utf8) }

    init(name: String, version: String) {
        self.name = name
        self.version = version
    }

    init(bytes: UnsafeRawBufferPointer) throws {
        try self.init(parsing: String(decoding: bytes, as: UTF8.self))
    }

    /// `name:version` as `description` writes it.
    init(parsing s: String) throws {
        guard let colon = s.lastIndex(of: ":") else {
            throw SnapshotterError.corrupt("metadata snapshot key \(s.debugDescription) has no ':'")
        }
        name = String(s[..<colon])
        version = String(s[s.index(after: colon)...])
    }

    static func < (a: SnapshotKey, b: SnapshotKey) -> Bool {
        (a.name, a.version) < (b.name, b.version)
    }
}
