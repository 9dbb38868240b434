import SnapshotterSystem
import SnapshotterStore
/// Binary encodings of the metadata records. Each starts with a format
/// version byte so the schema can grow; readers reject what they do not know.
/// Where encoded bytes go: an array, or a buffer of known size.
package protocol ByteSink {
    mutating func append(_ raw: UnsafeRawBufferPointer)
}

extension ByteSink {
    package mutating func u8(_ v: UInt8) { withUnsafeBytes(of: v) { append($0) } }
    package mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.bigEndian) { append($0) } }
    package mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { append($0) } }
    package mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.bigEndian) { append($0) } }
    package mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    package mutating func blob(_ b: [UInt8]) { u32(UInt32(b.count)); b.withUnsafeBytes { append($0) } }
    package mutating func string(_ s: String) {
        var s = s
        u32(UInt32(s.utf8.count))
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }
}

package struct ByteWriter: ByteSink {
    package var bytes: [UInt8] = []
    package init() {}
    package mutating func append(_ raw: UnsafeRawBufferPointer) { bytes.append(contentsOf: raw) }
}

/// Writes into a buffer of a size computed beforehand; bytes that would not
/// fit are not written, and `exact` tells whether it was filled exactly.
package struct BufferWriter: ByteSink {
    package let buffer: UnsafeMutableRawBufferPointer
    package private(set) var count = 0
    package private(set) var overflowed = false
    package init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }
    package var exact: Bool { !overflowed && count == buffer.count }
    package mutating func append(_ raw: UnsafeRawBufferPointer) {
        guard raw.count <= buffer.count - count else { overflowed = true; return }
        if let base = buffer.baseAddress, let src = raw.baseAddress { (base + count).copyMemory(from: src, byteCount: raw.count) }
        count += raw.count
    }
}

package struct ByteReader {
    package let bytes: UnsafeRawBufferPointer
    package var i = 0
    /// What the record is, put into words only for an error: a commit of
    /// many files reads a content record per file.
    private let name: Name

    private enum Name {
        case text(String)
        case content(Digest)
    }

    package init(_ bytes: UnsafeRawBufferPointer, what: String) {
        self.bytes = bytes
        name = .text(what)
    }

    package init(_ bytes: UnsafeRawBufferPointer, content digest: Digest) {
        self.bytes = bytes
        name = .content(digest)
    }

    package var what: String {
        switch name {
        case .text(let s): s
        case .content(let d): "content \(d)"
        }
    }

    package func fail(_ detail: String? = nil) -> SnapshotterError {
        SnapshotterError.corrupt("metadata record \(what) is malformed" + (detail.map { ": \($0)" } ?? ""))
    }

    package mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - i else { throw fail() }
        defer { i += n }
        return UnsafeRawBufferPointer(rebasing: bytes[i..<(i + n)])
    }

    package mutating func u8() throws -> UInt8 { try take(1)[0] }
    package mutating func u16() throws -> UInt16 { UInt16(bigEndian: try take(2).loadUnaligned(as: UInt16.self)) }
    package mutating func u32() throws -> UInt32 { UInt32(bigEndian: try take(4).loadUnaligned(as: UInt32.self)) }
    package mutating func u64() throws -> UInt64 { UInt64(bigEndian: try take(8).loadUnaligned(as: UInt64.self)) }
    package mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    package mutating func blob() throws -> [UInt8] { Array(try take(Int(try u32()))) }
    /// Validated straight from the record's bytes, with no array between.
    package mutating func string() throws -> String {
        let raw = try take(Int(try u32()))
        guard let s = raw.withMemoryRebound(to: UInt8.self, { String(validating: $0, as: UTF8.self) }) else { throw fail() }
        return s
    }
    package var atEnd: Bool { i == bytes.count }
}

/// A snapshot: `name:version` -> when it was made, its files (sorted by
/// path) and its config. Version 1 keeps every config; version 2 keeps only
/// a config given from outside (fetched from a registry): the store's own
/// configs are `SnapshotConfig.encode(files)` byte for byte, so at many
/// files the record need not carry a second copy of the list as JSON.
/// This release reads both and writes version 1: a new record version is
/// read by one minor release before any release writes it (README,
/// Compatibility), so the release before this one can still read every
/// record. The next minor release writes version 2 (`writtenVersion`).
package struct SnapshotRecord: Sendable {
    package static let writtenVersion: UInt8 = 1
    package static let readVersions: ClosedRange<UInt8> = 1...3
    package var created: Int64
    package var files: [SnapshotFile]
    /// The config JSON exactly as published, when it is not the canonical one.
    package var givenConfig: [UInt8]?
    /// Read without its config (`decode(keepConfig: false)`): `config` is
    /// then empty.
    package var configDropped = false

    /// The config JSON exactly as published.
    package var config: [UInt8] { configDropped ? [] : givenConfig ?? SnapshotConfig.encode(files) }

    package func encode(version: UInt8 = writtenVersion) throws -> [UInt8] {
        let list = FileList(files)
        let stored = try Self.configStored(version: version, files: list, givenConfig: givenConfig)
        var w = ByteWriter()
        w.bytes.reserveCapacity(Self.encodedSize(version: version, files: list, config: stored))
        Self.write(to: &w, version: version, created: created, files: list, config: stored)
        return w.bytes
    }

    /// The config part of a record of some version, with its size.
    package struct StoredConfig {
        enum Kind {
            /// Version 2, without a config.
            case none
            /// Bytes given from outside (a registry), kept as they are.
            case given([UInt8])
            /// The canonical config, written from the files as the record
            /// is (version 1 keeps a copy of every config).
            case canonical
        }

        let kind: Kind
        package let count: Int
        package var isNone: Bool { if case .none = kind { true } else { false } }
    }

    /// The config a record of `version` keeps: version 1 every config,
    /// version 2 only a given one. A record keeps a config's length in 32
    /// bits.
    package static func configStored(version: UInt8, files: FileList, givenConfig: [UInt8]?) throws -> StoredConfig {
        let config: StoredConfig
        if let givenConfig {
            config = StoredConfig(kind: .given(givenConfig), count: givenConfig.count)
        } else if version == 1 {
            config = StoredConfig(kind: .canonical, count: SnapshotConfig.encodedSize(sorted: files))
        } else {
            config = StoredConfig(kind: .none, count: 0)
        }
        guard config.count <= Int(UInt32.max) else {
            throw SnapshotterError.invalid("a snapshot's config of \(config.count) bytes does not fit a metadata record (4 GiB)")
        }
        return config
    }

    /// The size `write` will produce.
    package static func encodedSize(version: UInt8, files: FileList, config: StoredConfig) -> Int {
        // Header 13, then a config's length 4 (and version 2's flag 1), and
        // `entryBytes` a file besides its path.
        let tail = (version == 1 ? 4 : config.isNone ? 1 : 5) + config.count
        return files.indices.reduce(13 + tail) { $0 &+ entryBytes &+ files[$1].relativePath.utf8.count }
    }

    /// Writes a record of `version` (1 or 2) from files in path order, with
    /// the config `configStored` gives.
    package static func write<W: ByteSink>(to w: inout W, version: UInt8, created: Int64, files: FileList, config: StoredConfig) {
        writeFiles(to: &w, version: version, created: created, files: files)
        writeConfig(to: &w, version: version, config: config, files: files)
    }

    /// The first part of a record: its header and files.
    package static func writeFiles<W: ByteSink>(to w: inout W, version: UInt8, created: Int64, files: FileList) {
        w.u8(version)
        w.i64(created)
        w.u32(UInt32(files.count))
        writeEntries(to: &w, files, files.indices)
    }

    /// The entries of `files[range]`, in order.
    static func writeEntries<W: ByteSink>(to w: inout W, _ files: FileList, _ range: Range<Int>) {
        for i in range {
            let f = files[i]
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
    }

    /// The rest of a record after `writeFiles`: its config, the canonical
    /// one written from `files` in order.
    package static func writeConfig<W: ByteSink>(to w: inout W, version: UInt8, config: StoredConfig, files: FileList) {
        if version != 1 { w.u8(config.isNone ? 0 : 1) }
        if version != 1 && config.isNone { return }
        // Within 32 bits: configStored checked.
        w.u32(UInt32(truncatingIfNeeded: config.count))
        switch config.kind {
        case .none: break
        case .given(let bytes): bytes.withUnsafeBytes { w.append($0) }
        case .canonical: SnapshotConfig.encode(sorted: files) { w.append($0) }
        }
    }

    /// Decodes a record; with `keepConfig` false a kept config is checked
    /// but not copied (a restore or delete needs only the files, and a
    /// version 1 record's config is several times their size).
    /// `release` gets the bytes decoded so far every `releaseEvery` bytes.
    /// `part` gives a version 3 record's parts.
    package static func decode(_ bytes: UnsafeRawBufferPointer, key: String, keepConfig: Bool = true,
                               part: (Int) throws -> UnsafeRawBufferPointer? = { _ in nil },
                               release: ((UnsafeRawBufferPointer) -> Void)? = nil) throws -> SnapshotRecord {
        var files: [SnapshotFile] = []
        let walked = try walk(bytes, key: key, keepConfig: keepConfig, part: part, release: release) { count in
            files.reserveCapacity(count)
        } file: { _, _, f in
            files.append(f)
        }
        var record = SnapshotRecord(created: walked.created, files: files, givenConfig: walked.given)
        record.configDropped = !keepConfig
        return record
    }

    /// 4 MiB: a few madvise calls at a million files.
    static let releaseEvery = 4 << 20

    package init(created: Int64, files: [SnapshotFile], givenConfig: [UInt8]?) {
        self.created = created
        self.files = files
        self.givenConfig = givenConfig
    }
}

/// What the store knows about one content file.
package struct ContentRecord: Sendable, Equatable {
    package static let formatVersion: UInt8 = 1
    /// Bytes of the SPF1 encoding (the content file's size).
    package var encodedSize: Int64
    /// Logical size of the original file.
    package var logicalSize: Int64
    package var created: Int64
    /// Whether `storage/snapshot/xxh3/<hex>` (the read-only link) exists.
    package var hasLink: Bool

    /// What the content takes in the store: its file, and the read-only
    /// link's bytes when it has one.
    package var storeBytes: Int64 { encodedSize.saturatingAdd(hasLink ? logicalSize : 0) }

    package func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(Self.formatVersion)
        w.i64(encodedSize)
        w.i64(logicalSize)
        w.i64(created)
        w.u8(hasLink ? 1 : 0)
        return w.bytes
    }

    package static func decode(_ bytes: UnsafeRawBufferPointer, digest: Digest) throws -> ContentRecord {
        var r = ByteReader(bytes, content: digest)
        guard try r.u8() == formatVersion else { throw r.fail() }
        let rec = ContentRecord(encodedSize: try r.i64(), logicalSize: try r.i64(), created: try r.i64(), hasLink: try r.u8() != 0)
        guard rec.encodedSize >= 0, rec.logicalSize >= 0 else {
            throw r.fail("encoded size \(rec.encodedSize) or logical size \(rec.logicalSize) is negative")
        }
        return rec
    }

    package init(encodedSize: Int64, logicalSize: Int64, created: Int64, hasLink: Bool) {
        self.encodedSize = encodedSize
        self.logicalSize = logicalSize
        self.created = created
        self.hasLink = hasLink
    }
}

/// The read-only fast path: the inode of a store link -> its digest, with
/// the size, mtime and ctime it had when recorded. Records written before
/// ctime was kept (24 bytes) decode with no ctime: such an inode is not
/// trusted until a snapshot reads it once and records its ctime.
package struct InodeRecord: Sendable, Equatable {
    package var digest: Digest
    package var size: Int64
    package var mtimeNanos: Int64
    package var ctimeNanos: Int64? = nil

    package static func key(dev: UInt64, ino: UInt64) -> [UInt8] {
        var w = ByteWriter()
        w.u64(dev)
        w.u64(ino)
        return w.bytes
    }

    package func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u64(digest.value)
        w.i64(size)
        w.i64(mtimeNanos)
        if let ctimeNanos { w.i64(ctimeNanos) }
        return w.bytes
    }

    package static func decode(_ bytes: UnsafeRawBufferPointer) throws -> InodeRecord {
        var r = ByteReader(bytes, what: "inode")
        var rec = InodeRecord(digest: Digest(try r.u64()), size: try r.i64(), mtimeNanos: try r.i64())
        if !r.atEnd { rec.ctimeNanos = try r.i64() }
        guard r.atEnd else { throw r.fail() }
        return rec
    }

    package init(digest: Digest, size: Int64, mtimeNanos: Int64, ctimeNanos: Int64? = nil) {
        self.digest = digest
        self.size = size
        self.mtimeNanos = mtimeNanos
        self.ctimeNanos = ctimeNanos
    }
}

extension Digest {
    package var key: [UInt8] {
        var w = ByteWriter()
        w.u64(value)
        return w.bytes
    }

    package init(key: UnsafeRawBufferPointer) throws {
        guard key.count == 8 else { throw SnapshotterError.corrupt("metadata digest key has \(key.count) bytes") }
        self.init(key.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }
}

/// `name:version`, the key of a snapshot (names never contain ':').
package struct SnapshotKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    package var name: String
    package var version: String

    package var description: String { "\(name):\(version)" }
    package var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(name.utf8.count + 1 + version.utf8.count)
        out += name.utf8
        out.append(UInt8(ascii: ":"))
        out += version.utf8
        return out
    }

    package init(name: String, version: String) {
        self.name = name
        self.version = version
    }

    package init(bytes: UnsafeRawBufferPointer) throws {
        try self.init(parsing: String(decoding: bytes, as: UTF8.self))
    }

    /// `name:version` as `description` writes it.
    package init(parsing s: String) throws {
        guard let colon = s.lastIndex(of: ":") else {
            throw SnapshotterError.corrupt("metadata snapshot key \(s.debugDescription) has no ':'")
        }
        name = String(s[..<colon])
        version = String(s[s.index(after: colon)...])
    }

    package static func < (a: SnapshotKey, b: SnapshotKey) -> Bool {
        (a.name, a.version) < (b.name, b.version)
    }
}
