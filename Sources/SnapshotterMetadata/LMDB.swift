#if canImport(Glibc)
import Glibc
#endif
import CLMDB
import SnapshotterSystem
import SnapshotterStore
import Synchronization

/// A thin wrapper over an LMDB environment. Transactions are confined to the
/// thread that runs the closure (callers run them on the blocking pool);
/// LMDB itself serialises writers across threads and processes.
final class LMDBEnvironment: @unchecked Sendable {
    private let env: OpaquePointer
    let path: String
    /// The map's address and length, for releaseMapPages.
    private let map: (UInt, Int)?
    /// Run by deinit around mdb_env_close (SharedEnvironments).
    private let willClose: @Sendable () -> Void
    private let didClose: @Sendable () -> Void

    init(directory: String, mapSize: Int, maxDatabases: UInt32, mode: mode_t = 0o600,
         willClose: @escaping @Sendable () -> Void = {}, didClose: @escaping @Sendable () -> Void = {}) throws {
        var created: OpaquePointer?
        try LMDBEnvironment.check(mdb_env_create(&created), "create metadata environment")
        guard let e = created else { throw SnapshotterError(.internal, "mdb_env_create returned no environment") }
        // Set up on the local handle and closed here on failure: the stored
        // properties are assigned only once it is open, so a failed init
        // never reaches deinit (which would close it a second time).
        do {
            try LMDBEnvironment.check(mdb_env_set_maxdbs(e, maxDatabases), "configure metadata")
            try LMDBEnvironment.check(mdb_env_set_mapsize(e, mapSize), "configure metadata")
            try LMDBEnvironment.check(mdb_env_set_maxreaders(e, 1024), "configure metadata")
            // NOTLS: read transactions are not tied to a thread's TLS slot,
            // so many pool threads and processes can read at once.
            try LMDBEnvironment.check(mdb_env_open(e, directory, UInt32(MDB_NOTLS), mode), "open metadata at \(directory)")
            var dead: Int32 = 0
            _ = mdb_reader_check(e, &dead)
        } catch {
            mdb_env_close(e)
            throw error
        }
        env = e
        path = directory
        map = Self.findMap(e)
        self.willClose = willClose
        self.didClose = didClose
    }

    deinit {
        willClose()
        mdb_env_close(env)
        didClose()
    }

    static func check(_ rc: Int32, _ what: @autoclosure () -> String) throws {
        guard rc != 0 else { return }
        let message = String(cString: mdb_strerror(rc))
        switch rc {
        case MDB_MAP_FULL:
            throw SnapshotterError(.noSpace, "\(what()): the metadata map is full (\(message)); \(mapFullAdvice)")
        case MDB_READERS_FULL:
            throw SnapshotterError(.busy, "\(what()): \(message)")
        case MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INVALID, MDB_VERSION_MISMATCH:
            throw SnapshotterError(.corrupt, "\(what()): \(message)")
        case ENOSPC:
            throw SnapshotterError(.noSpace, "\(what()): \(message)")
        case EACCES, EPERM, EROFS:
            throw SnapshotterError(.permission, "\(what()): \(message)")
        default:
            throw SnapshotterError(.io, "\(what()): \(message)")
        }
    }

    /// Opens (creating them in a new store) the named tables in one write
    /// transaction: one commit, and one sync, for a new store, not one each.
    func openDatabases(_ tables: [(name: String, dupSort: Bool)]) throws -> [MDB_dbi] {
        try write { txn in
            try tables.map { table in
                var dbi: MDB_dbi = 0
                let flags = UInt32(MDB_CREATE) | (table.dupSort ? UInt32(MDB_DUPSORT) : 0)
                try LMDBEnvironment.check(mdb_dbi_open(txn.txn, table.name, flags, &dbi), "open metadata table \(table.name)")
                return dbi
            }
        }
    }

    /// Log messages produced inside a transaction are delivered after it.
    func read<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        try Log.deferring { try readNow(body) }
    }

    private func readNow<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        let t = try beginRead()
        defer { mdb_txn_abort(t) }
        return try body(LMDBTransaction(txn: t))
    }

    /// A new read transaction (the caller aborts it).
    fileprivate func beginRead() throws -> OpaquePointer {
        var t: OpaquePointer?
        try LMDBEnvironment.check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &t), "begin metadata read")
        guard let t else { throw SnapshotterError(.internal, "no read transaction") }
        return t
    }

    /// Runs `body` in a write transaction and commits it when `body` returns;
    /// a thrown error aborts it.
    func write<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        try Log.deferring { try writeNow(body) }
    }

    private func writeNow<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        var t: OpaquePointer?
        try LMDBEnvironment.check(mdb_txn_begin(env, nil, 0, &t), "begin metadata write")
        guard let t else { throw SnapshotterError(.internal, "no write transaction") }
        let result: T
        do {
            result = try body(LMDBTransaction(txn: t))
        } catch {
            mdb_txn_abort(t)
            throw error
        }
        if Sys.injected(.metadataCommit, path) {
            mdb_txn_abort(t)
            try LMDBEnvironment.check(Glibc.errno, "commit metadata at \(path)")
        }
        try LMDBEnvironment.check(mdb_txn_commit(t), "commit metadata at \(path)")
        return result
    }

    /// Takes and drops the writer lock. A writer killed after writing its
    /// meta page but before publishing it leaves readers on the previous
    /// state until the next writer recovers the lock; this makes that
    /// recovery happen now.
    func reconcile() throws {
        var t: OpaquePointer?
        try LMDBEnvironment.check(mdb_txn_begin(env, nil, 0, &t), "begin metadata write")
        mdb_txn_abort(t)
    }

    static let mapFullAdvice = "delete snapshots, or open the store with a larger map (StoreOptions.metadataMapSize, SNAPSHOTTER_OPT_METADATA_MAP_SIZE)"

    /// The map's size in pages, and how many of them a write can still
    /// take: those never used plus those on LMDB's free list (reusable once
    /// no reader needs them, so this may overstate it a little).
    func pages() throws -> (total: Int, free: Int, pageSize: Int) {
        var info = MDB_envinfo()
        try LMDBEnvironment.check(mdb_env_info(env, &info), "read metadata map size")
        var st = MDB_stat()
        try LMDBEnvironment.check(mdb_env_stat(env, &st), "read metadata map size")
        let pageSize = max(1, Int(st.ms_psize))
        let total = info.me_mapsize / pageSize
        let used = Int(clamping: info.me_last_pgno) &+ 1
        let freed = try read { txn -> Int in
            // The free list (table 0) maps a transaction id to the pages it
            // freed: a count, then the page numbers.
            var c: OpaquePointer?
            try LMDBEnvironment.check(mdb_cursor_open(txn.txn, 0, &c), "read metadata free list")
            defer { mdb_cursor_close(c) }
            var k = MDB_val(), v = MDB_val()
            var sum = 0
            var rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)
            while rc == 0 {
                if v.mv_size >= MemoryLayout<Int>.size, let p = v.mv_data {
                    sum = sum.addingReportingOverflow(Int(clamping: p.loadUnaligned(as: UInt.self))).partialValue
                }
                rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)
            }
            if rc != MDB_NOTFOUND { try LMDBEnvironment.check(rc, "read metadata free list") }
            return sum
        }
        return (total, min(total, max(0, total - used) + max(0, freed)), pageSize)
    }

    func sync() throws {
        try LMDBEnvironment.check(mdb_env_sync(env, 1), "sync metadata")
    }

    /// Drops this process's mappings of the map's pages (the map is
    /// read-only and shared: the pages stay in the page cache and fault
    /// back in on the next read, unchanged). What a transaction reads of the
    /// map counts in the process's resident memory until then, as much as
    /// the tables and records it touched.
    func releaseMapPages() {
        guard let (address, length) = map, let p = UnsafeMutableRawPointer(bitPattern: address) else { return }
        _ = madvise(p, length, MADV_DONTNEED)
    }

    private static let pageSize = UInt(max(4096, sysconf(Int32(_SC_PAGESIZE))))

    /// Gives back the map's whole pages inside `bytes` (part of a value read
    /// from the map, already decoded). Only pages of the map: a value a
    /// write transaction changed is in LMDB's own memory, and bytes outside
    /// the map are never touched. The map is read-only and shared, so a
    /// later read of those pages finds them in the page cache again.
    func releaseMapPages(of bytes: UnsafeRawBufferPointer) {
        guard let (address, length) = map, let base = bytes.baseAddress, bytes.count > 0 else { return }
        let page = Self.pageSize
        let from = UInt(bitPattern: base), to = from + UInt(bytes.count)
        let start = (from + page - 1) / page * page, end = to / page * page
        guard start < end, start >= address, end <= address + UInt(length),
              let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(p, Int(end - start), MADV_DONTNEED)
    }

    /// Where LMDB mapped the data file (mdb_env_info tells the address only
    /// of a fixed map): the mapping of its inode of the map's size, from
    /// /proc/self/maps; nil without procfs. LMDB never moves an open map
    /// (the size is set before mdb_env_open and not changed after).
    private static func findMap(_ env: OpaquePointer) -> (UInt, Int)? {
        var info = MDB_envinfo()
        var fd: Int32 = -1
        var st = stat()
        guard mdb_env_info(env, &info) == 0, mdb_env_get_fd(env, &fd) == 0, fstat(fd, &st) == 0,
              let maps = try? Sys.readProcFile("/proc/self/maps") else { return nil }
        for line in maps.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count >= 5, UInt64(String(decoding: fields[4], as: UTF8.self)) == UInt64(st.st_ino) else { continue }
            let range = fields[0].split(separator: UInt8(ascii: "-"))
            guard range.count == 2, let start = UInt(String(decoding: range[0], as: UTF8.self), radix: 16),
                  let end = UInt(String(decoding: range[1], as: UTF8.self), radix: 16), end > start,
                  Int(end - start) == info.me_mapsize else { continue }
            return (start, Int(end - start))
        }
        return nil
    }
}

/// A read transaction held across calls and threads (the environment is
/// opened with MDB_NOTLS) until `end` or deinit: what it reads from the map
/// stays valid and unchanged until then. Writers cannot reuse the pages
/// freed meanwhile, so one is held for one operation only.
final class LMDBHeldRead: @unchecked Sendable {
    let txn: LMDBTransaction
    private let done = Mutex(false)
    /// Kept open while the transaction may be: it ends before the
    /// environment can close.
    private let env: LMDBEnvironment

    init(_ env: LMDBEnvironment) throws {
        txn = LMDBTransaction(txn: try env.beginRead())
        self.env = env
    }

    var ended: Bool { done.withLock { $0 } }

    func end() {
        let first = done.withLock { ended in
            defer { ended = true }
            return !ended
        }
        if first { mdb_txn_abort(txn.txn) }
    }

    deinit { end() }
}

struct LMDBTransaction {
    let txn: OpaquePointer

    func get(_ dbi: MDB_dbi, _ key: [UInt8]) throws -> [UInt8]? {
        try withValue(dbi, key) { Array($0) }
    }

    /// `body` on the value in the map, not copied (a snapshot record is
    /// megabytes at many files); the bytes are valid only inside `body`.
    func withValue<T>(_ dbi: MDB_dbi, _ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T? {
        try key.withUnsafeBytes { kb in
            var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
            var v = MDB_val()
            let rc = mdb_get(txn, dbi, &k, &v)
            if rc == MDB_NOTFOUND { return nil }
            try LMDBEnvironment.check(rc, "read metadata")
            return try body(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
        }
    }

    /// Puts a value of `size` bytes that `fill` writes straight into the
    /// transaction's page (MDB_RESERVE: no buffer of our own for it).
    func putReserved(_ dbi: MDB_dbi, _ key: [UInt8], size: Int, _ fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws {
        try key.withUnsafeBytes { kb in
            var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
            var v = MDB_val(mv_size: size, mv_data: nil)
            try LMDBEnvironment.check(mdb_put(txn, dbi, &k, &v, UInt32(MDB_RESERVE)), "write metadata")
            guard v.mv_size == size, let p = v.mv_data else { throw SnapshotterError(.internal, "LMDB reserved no room for a value") }
            try fill(UnsafeMutableRawBufferPointer(start: p, count: size))
        }
    }

    func contains(_ dbi: MDB_dbi, _ key: [UInt8]) throws -> Bool {
        try withValue(dbi, key) { _ in true } ?? false
    }

    /// Puts a value; with `noOverwrite` returns false when the key exists.
    @discardableResult
    func put(_ dbi: MDB_dbi, _ key: [UInt8], _ value: [UInt8], noOverwrite: Bool = false) throws -> Bool {
        try key.withUnsafeBytes { kb in
            try value.withUnsafeBytes { vb in
                var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
                var v = MDB_val(mv_size: vb.count, mv_data: UnsafeMutableRawPointer(mutating: vb.baseAddress))
                let flags: UInt32 = noOverwrite ? UInt32(MDB_NOOVERWRITE) : 0
                let rc = mdb_put(txn, dbi, &k, &v, flags)
                if rc == MDB_KEYEXIST { return false }
                try LMDBEnvironment.check(rc, "write metadata")
                return true
            }
        }
    }

    /// Deletes a key (all its duplicates), or with `value` one duplicate.
    /// Returns false when there was nothing to delete.
    @discardableResult
    func delete(_ dbi: MDB_dbi, _ key: [UInt8], value: [UInt8]? = nil) throws -> Bool {
        try key.withUnsafeBytes { kb in
            var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
            let rc: Int32
            if let value {
                rc = value.withUnsafeBytes { vb in
                    var v = MDB_val(mv_size: vb.count, mv_data: UnsafeMutableRawPointer(mutating: vb.baseAddress))
                    return mdb_del(txn, dbi, &k, &v)
                }
            } else {
                rc = mdb_del(txn, dbi, &k, nil)
            }
            if rc == MDB_NOTFOUND { return false }
            try LMDBEnvironment.check(rc, "delete metadata")
            return true
        }
    }

    /// Calls `body` for each key and value in key order (for a dup-sorted
    /// table, each duplicate); `body` returns false to stop. With `key`, only
    /// that key's values (dup-sorted tables) are visited.
    func forEach(_ dbi: MDB_dbi, key only: [UInt8]? = nil,
                 _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        var c: OpaquePointer?
        try LMDBEnvironment.check(mdb_cursor_open(txn, dbi, &c), "open metadata cursor")
        defer { mdb_cursor_close(c) }
        var k = MDB_val()
        var v = MDB_val()
        var rc: Int32
        if let only {
            rc = only.withUnsafeBytes { kb in
                k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
                return mdb_cursor_get(c, &k, &v, MDB_SET_KEY)
            }
        } else {
            rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)
        }
        while rc == 0 {
            let kb = UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size)
            let vb = UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
            if try !body(kb, vb) { return }
            rc = mdb_cursor_get(c, &k, &v, only != nil ? MDB_NEXT_DUP : MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try LMDBEnvironment.check(rc, "iterate metadata") }
    }

    func count(_ dbi: MDB_dbi) throws -> Int {
        var st = MDB_stat()
        try LMDBEnvironment.check(mdb_stat(txn, dbi, &st), "stat metadata")
        return Int(st.ms_entries)
    }

    init(txn: OpaquePointer) {
        self.txn = txn
    }
}
