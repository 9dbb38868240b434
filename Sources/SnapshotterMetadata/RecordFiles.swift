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
    /// files first, then `file` each file with the offset of its entry.
    package static func walk(_ bytes: UnsafeRawBufferPointer, key: String, keepConfig: Bool,
                             release: ((UnsafeRawBufferPointer) -> Void)?, count counted: (Int) -> Void,
                             file: (Int, SnapshotFile) throws -> Void) throws -> Walked {
        var r = ByteReader(bytes, what: "snapshot \(key)")
        let (version, created, count) = try readHeader(&r)
        counted(count)
        var total: Int64 = 0
        var released = 0
        for _ in 0..<count {
            let at = r.i
            try file(at, try decodeFile(&r, total: &total))
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
        guard readVersions.contains(version) else { throw r.fail("format version \(version) is not 1 or 2") }
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
/// record's pages valid and unchanged, and only where every 16th file's
/// entry starts is kept (half a byte a file), so a restore of a million
/// files does not hold a million decoded ones (64 MB). The whole record was
/// read and checked when this was made, so reading a file again does not
/// fail; one asked for out of range or after `end` comes back with an empty
/// path, which every use refuses.
package final class HeldSnapshotFiles: @unchecked Sendable {
    private let held: LMDBHeldRead
    private let bytes: UnsafeRawBufferPointer
    private let anchors: [Int]
    package let count: Int
    package let totalSize: Int64
    /// Gives back the record's pages in the map, every `releaseEvery`
    /// files read (from any thread: a page given back is read again from
    /// the page cache).
    private let release: (UnsafeRawBufferPointer) -> Void
    private let reads = Atomic<Int>(0)

    init(_ held: LMDBHeldRead, bytes: UnsafeRawBufferPointer, key: SnapshotKey,
         release: @escaping (UnsafeRawBufferPointer) -> Void) throws {
        self.held = held
        self.bytes = bytes
        self.release = release
        var anchors: [Int] = []
        var n = 0
        let walked = try SnapshotRecord.walk(bytes, key: key.description, keepConfig: false, release: release) { count in
            anchors.reserveCapacity(count / Self.stride + 1)
        } file: { at, _ in
            if n % Self.stride == 0 { anchors.append(at) }
            n += 1
        }
        self.anchors = anchors
        count = walked.count
        totalSize = walked.totalSize
    }

    static let stride = 16
    static let releaseEvery = 16_384

    /// File `i` of the record, in path order.
    package func file(_ i: Int) -> SnapshotFile {
        guard i >= 0, i < count, !held.ended else { return .placeholder }
        if reads.add(1, ordering: .relaxed).newValue % Self.releaseEvery == 0 { release(bytes) }
        var r = ByteReader(bytes, what: "")
        r.i = anchors[i / Self.stride]
        var total: Int64 = 0
        do {
            // Past the entries before it: a path's length, the path, the rest.
            for _ in 0..<(i % Self.stride) { _ = try r.take(Int(try r.u32()) + SnapshotRecord.entryBytes - 4) }
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
    /// The files of snapshot `key` as they are in the map (nil when there is
    /// no such snapshot), held until `end`; the pages read while checking
    /// the record are given back as it goes.
    package func heldSnapshotFiles(_ key: SnapshotKey) throws -> HeldSnapshotFiles? {
        let held = try LMDBHeldRead(env)
        do {
            guard let bytes = try held.txn.withValue(snapshots, key.bytes, { $0 }) else {
                held.end()
                return nil
            }
            return try HeldSnapshotFiles(held, bytes: bytes, key: key, release: env.releaseMapPages(of:))
        } catch {
            held.end()
            throw error
        }
    }
}
