import Synchronization
import SnapshotterSystem
import SnapshotterStore

extension SnapshotRecord {
    /// What `walk` read besides the files.
    package struct Walked {
        package var created: Int64
        package var count: Int
        /// The files' sizes added up (checked).
        package var totalSize: Int64
        package var given: [UInt8]?
    }

    /// Reads a whole record, checking all of it: `count` gets the number of
    /// files first, then `file` each file with its segment and the offset of
    /// its entry there: segment 0 is the record itself for versions 1 and 2,
    /// segment `i` is part `i` (`part(i)`, nil when missing) for version 3.
    /// A version 3 record being written has no files yet: it is corrupt here
    /// (readers look at `isBeingWritten` first).
    package static func walk(_ bytes: UnsafeRawBufferPointer, key: String, keepConfig: Bool,
                             part: (Int) throws -> UnsafeRawBufferPointer? = { _ in nil },
                             release: ((UnsafeRawBufferPointer) -> Void)?, count counted: (Int) -> Void,
                             file: (Int, Int, SnapshotFile) throws -> Void) throws -> Walked {
        if let h = try Header.decode(bytes, key: key) {
            guard h.writer == nil else {
                throw SnapshotterError.corrupt("metadata record snapshot \(key) is still being written")
            }
            let total = try walkParts(h, key: key, part: part, release: release, counted: counted, file: file)
            return Walked(created: h.created, count: h.count, totalSize: total, given: keepConfig ? h.given : nil)
        }
        var r = ByteReader(bytes, what: "snapshot \(key)")
        let (version, created, count) = try readHeader(&r)
        counted(count)
        var total: Int64 = 0
        var released = 0
        for _ in 0..<count {
            let at = r.i
            try file(0, at, try decodeFile(&r, total: &total))
            if let release, r.i - released >= releaseEvery {
                release(UnsafeRawBufferPointer(rebasing: bytes[released..<r.i]))
                released = r.i
            }
        }
        // Version 1 always kept the config.
        var given: [UInt8]?
        switch version == 1 ? 1 : try r.u8() {
        case 0: given = nil
        case 1:
            if keepConfig { given = try r.blob() } else { _ = try r.take(Int(try r.u32())) }
        case let flag: throw r.fail("config flag \(flag) is not 0 or 1")
        }
        guard r.atEnd else { throw r.fail() }
        release?(UnsafeRawBufferPointer(rebasing: bytes[released...]))
        return Walked(created: created, count: count, totalSize: total, given: given)
    }

    /// The files of a record's first part (what `writeFiles` wrote), read
    /// one after the other as a config's encoder asks for them: the record
    /// stands in for the list it was written from, which its writer may then
    /// drop. Going back to an earlier index reads again from the start.
    package final class WrittenFiles: @unchecked Sendable {
        private var reader: ByteReader
        private let start: Int
        private var next = 0
        private var total: Int64 = 0
        private var failure: SnapshotterError?
        package let count: Int

        package init(_ bytes: UnsafeRawBufferPointer, key: String) throws {
            var r = ByteReader(bytes, what: "snapshot \(key)")
            count = try SnapshotRecord.readHeader(&r).count
            start = r.i
            reader = r
        }

        /// Only valid while the bytes are (during the record's write).
        package var list: FileList { FileList(count: count) { self.file($0) } }

        private func file(_ i: Int) -> SnapshotFile {
            if i < next {
                reader.i = start
                next = 0
                total = 0
            }
            var f = SnapshotFile.placeholder
            while next <= i, failure == nil {
                do {
                    f = try SnapshotRecord.decodeFile(&reader, total: &total)
                    next += 1
                } catch {
                    failure = error as? SnapshotterError ?? reader.fail()
                }
            }
            return f
        }

        /// Throws when a file did not decode (what `list` then gave is wrong).
        package func check() throws {
            if let failure { throw SnapshotterError(.internal, "the record being written does not read back: \(failure.message)") }
        }
    }

    /// A record's header: its format version (one this release reads), when
    /// it was made, and how many files follow.
    static func readHeader(_ r: inout ByteReader) throws -> (version: UInt8, created: Int64, count: Int) {
        let version = try r.u8()
        guard readVersions.contains(version), version < 3 else { throw r.fail("format version \(version) is not 1, 2 or 3") }
        let created = try r.i64()
        let count = Int(try r.u32())
        guard count <= r.bytes.count else { throw r.fail() }
        return (version, created, count)
    }

    /// A file's entry besides its path: the path's length (4 bytes), then
    /// digest, flags, mode, owner, size, mtime and type flag (38).
    static let entryBytes = 42

    /// One file of a record's list, its size added to `total` (checked).
    static func decodeFile(_ r: inout ByteReader, total: inout Int64) throws -> SnapshotFile {
        let path = try r.string()
        let digest = Digest(try r.u64())
        let ro = try r.u8() != 0
        let mode = try r.u32(), uid = try r.u32(), gid = try r.u32()
        let size = try r.i64(), mtime = try r.i64()
        let tf = try r.u8()
        let (sum, overflow) = total.addingReportingOverflow(size)
        guard size >= 0, !overflow else { throw r.fail("file size \(size) is negative or makes the total overflow") }
        total = sum
        return SnapshotFile(relativePath: path, digest: digest, readOnly: ro, mode: mode, uid: uid, gid: gid,
                            size: size, mtimeNanos: mtime, typeflag: tf)
    }
}

/// A snapshot's files read where they are in the metadata map, for as long
/// as an operation needs them: a read transaction held open keeps the
/// record's pages (and a version 3 record's parts) valid and unchanged, and
/// only where every 16th file's entry starts is kept (a byte a file), so a
/// restore of a million files does not hold a million decoded ones (64 MB).
/// The whole record was read and checked when this was made, so reading a
/// file again does not fail; one asked for out of range or after `end`
/// comes back with an empty path, which every use refuses.
package final class HeldSnapshotFiles: @unchecked Sendable {
    private let held: LMDBHeldRead
    /// The record (versions 1 and 2) or its parts (version 3), each with the
    /// index of its first file and of its first anchor.
    private let segments: [(bytes: UnsafeRawBufferPointer, first: Int, anchors: Int)]
    /// Where every 16th file of a segment starts, counted from the
    /// segment's first file.
    private let anchors: [Int]
    package let count: Int
    package let totalSize: Int64
    /// Gives back the record's pages in the map, every `releaseEvery`
    /// files read (from any thread: a page given back is read again from
    /// the page cache).
    private let release: (UnsafeRawBufferPointer) -> Void
    private let reads = Atomic<Int>(0)

    init(_ held: LMDBHeldRead, bytes: UnsafeRawBufferPointer, key: SnapshotKey, part: (Int) throws -> UnsafeRawBufferPointer?,
         release: @escaping (UnsafeRawBufferPointer) -> Void) throws {
        self.held = held
        self.release = release
        var anchors: [Int] = []
        var parts: [UnsafeRawBufferPointer] = []
        var segments: [(bytes: UnsafeRawBufferPointer, first: Int, anchors: Int)] = []
        var n = 0
        let walked = try SnapshotRecord.walk(bytes, key: key.description, keepConfig: false, part: { i in
            let p = try part(i)
            if let p, i == parts.count { parts.append(p) }
            return p
        }, release: release) { count in
            anchors.reserveCapacity(count / Self.stride + 1)
        } file: { segment, at, _ in
            if segment == segments.count {
                segments.append((segment < parts.count ? parts[segment] : bytes, n, anchors.count))
            }
            if (n - segments[segments.count - 1].first) % Self.stride == 0 { anchors.append(at) }
            n += 1
        }
        self.anchors = anchors
        self.segments = segments
        count = walked.count
        totalSize = walked.totalSize
    }

    static let stride = 16
    static let releaseEvery = 16_384

    /// File `i` of the record, in path order.
    package func file(_ i: Int) -> SnapshotFile {
        guard i >= 0, i < count, !held.ended else { return .placeholder }
        // The last segment starting at or before i (one for versions 1 and 2).
        var lo = 0, hi = segments.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if segments[mid].first <= i { lo = mid } else { hi = mid - 1 }
        }
        let segment = segments[lo], j = i - segment.first
        if reads.add(1, ordering: .relaxed).newValue % Self.releaseEvery == 0 { segments.forEach { release($0.bytes) } }
        var r = ByteReader(segment.bytes, what: "")
        r.i = anchors[segment.anchors + j / Self.stride]
        var total: Int64 = 0
        do {
            // Past the entries before it: a path's length, the path, the rest.
            for _ in 0..<(j % Self.stride) { _ = try r.take(Int(try r.u32()) + SnapshotRecord.entryBytes - 4) }
            return try SnapshotRecord.decodeFile(&r, total: &total)
        } catch {
            return .placeholder
        }
    }

    package var list: FileList { FileList(count: count) { self.file($0) } }

    /// Ends the read transaction: no file is read after this.
    package func end() { held.end() }
}

extension MetadataStore {
    /// Reads part `i` of `key`'s version 3 record where it is in the map
    /// (valid while `txn` is), nil when there is none.
    func parts(of key: SnapshotKey, in txn: LMDBTransaction) -> (Int) throws -> UnsafeRawBufferPointer? {
        let keyBytes = key.bytes
        return { i in try txn.withValue(self.parts, SnapshotRecord.partKey(keyBytes, i)) { $0 } }
    }

    /// The files of snapshot `key` as they are in the map (nil when there is
    /// no such snapshot), held until `end`; the pages read while checking
    /// the record are given back as it goes.
    package func heldSnapshotFiles(_ key: SnapshotKey) throws -> HeldSnapshotFiles? {
        let held = try LMDBHeldRead(env)
        do {
            // A record being written is no snapshot yet.
            guard let bytes = try held.txn.withValue(snapshots, key.bytes, { $0 }),
                  try !SnapshotRecord.isBeingWritten(bytes, key: key.description) else {
                held.end()
                return nil
            }
            return try HeldSnapshotFiles(held, bytes: bytes, key: key, part: parts(of: key, in: held.txn),
                                         release: env.releaseMapPages(of:))
        } catch {
            held.end()
            throw error
        }
    }
}
