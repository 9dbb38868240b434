import SnapshotterSystem
import SnapshotterStore
/// One transaction on the metadata, and the only way to its tables: the
/// engine calls these named operations (the schema is MetadataStore's
/// comment), never a table. Reads work in any transaction; writes need one
/// from `MetadataStore.write`.
package struct MetadataTransaction {
    fileprivate let txn: LMDBTransaction
    fileprivate let db: MetadataStore

    init(_ txn: LMDBTransaction, _ db: MetadataStore) {
        self.txn = txn
        self.db = db
    }
}

extension MetadataStore {
    /// Runs `body` in a read transaction.
    @discardableResult
    package func read<T>(_ body: (MetadataTransaction) throws -> T) throws -> T {
        try env.read { try body(MetadataTransaction($0, self)) }
    }

    /// Runs `body` in a write transaction, committed when it returns and
    /// aborted when it throws.
    @discardableResult
    package func write<T>(_ body: (MetadataTransaction) throws -> T) throws -> T {
        try env.write { try body(MetadataTransaction($0, self)) }
    }

    /// Makes a writer killed mid-commit visible now (LMDBEnvironment.reconcile).
    package func reconcile() throws {
        try env.reconcile()
    }
}

// MARK: snapshots and their access times

extension MetadataTransaction {
    /// A snapshot's record; without `config` its files only (see
    /// `SnapshotRecord.decode`).
    /// The record's pages in the map are given back as its files are
    /// decoded: at many files the map's copy and the decoded list would
    /// otherwise be resident together.
    /// A record still being written is no snapshot yet: nil.
    package func snapshot(_ key: SnapshotKey, config: Bool = true) throws -> SnapshotRecord? {
        try txn.withValue(db.snapshots, key.bytes) { bytes -> SnapshotRecord? in
            if try SnapshotRecord.isBeingWritten(bytes, key: key.description) { return nil }
            return try SnapshotRecord.decode(bytes, key: key.description, keepConfig: config, part: part(of: key),
                                             release: db.env.releaseMapPages(of:))
        } ?? nil
    }

    private func part(of key: SnapshotKey) -> (Int) throws -> UnsafeRawBufferPointer? {
        db.parts(of: key, in: txn)
    }

    /// A version 3 record's header (nil for none or another version).
    package func snapshotHeader(_ key: SnapshotKey) throws -> SnapshotRecord.Header? {
        try txn.withValue(db.snapshots, key.bytes) { try SnapshotRecord.Header.decode($0, key: key.description) } ?? nil
    }

    /// Writes a version 3 record's header (its access time is written when
    /// it is complete).
    package func putSnapshotHeader(_ key: SnapshotKey, _ header: SnapshotRecord.Header) throws {
        try txn.put(db.snapshots, key.bytes, header.encode())
    }

    /// Writes part `index` of `key`'s version 3 record: `files[range]`.
    package func putPart(_ key: SnapshotKey, _ index: Int, _ files: FileList, _ range: Range<Int>) throws {
        let size = SnapshotRecord.partSize(files, range)
        try txn.putReserved(db.parts, SnapshotRecord.partKey(key.bytes, index), size: size) { buffer in
            var w = BufferWriter(buffer)
            SnapshotRecord.writePart(to: &w, files, range)
            guard w.exact else { throw SnapshotterError(.internal, "snapshot \(key): part \(index) is not the size computed for it") }
        }
    }

    /// Writes `files` (in path order) as parts numbered from `first` on, of
    /// `partFiles` files each but the last; returns how many.
    package func putParts(_ key: SnapshotKey, _ files: FileList, from first: Int) throws -> Int {
        var n = 0
        for start in stride(from: 0, to: files.count, by: SnapshotRecord.partFiles) {
            try putPart(key, first + n, files, start..<min(start + SnapshotRecord.partFiles, files.count))
            n += 1
        }
        return n
    }

    /// Writes a complete version 3 record of `files` (in path order), and
    /// its access time.
    package func putSnapshot(_ key: SnapshotKey, parts files: FileList, created: Int64, given: [UInt8]?, accessed: Int64) throws {
        let parts = try putParts(key, files, from: 0)
        try putSnapshotHeader(key, SnapshotRecord.Header(created: created, count: files.count, parts: parts, writer: nil, given: given))
        try setLastAccess(key, accessed)
    }

    /// The records being written, with their writers' lease keys.
    package func snapshotsBeingWritten() throws -> [(SnapshotKey, [UInt8])] {
        var out: [(SnapshotKey, [UInt8])] = []
        try txn.forEach(db.snapshots) { k, v in
            let key = try SnapshotKey(bytes: k)
            // An unreadable record is verify's to report.
            if let writer = (try? SnapshotRecord.Header.decode(v, key: key.description))?.writer { out.append((key, writer)) }
            return true
        }
        return out
    }

    /// The digests of the files a record being written holds so far.
    package func digestsWritten(_ key: SnapshotKey) throws -> Set<Digest> {
        guard let h = try snapshotHeader(key) else { return [] }
        var out = Set<Digest>()
        _ = try SnapshotRecord.walkParts(h, key: key.description, part: part(of: key), release: nil, counted: { _ in }) { _, _, f in
            out.insert(f.digest)
        }
        return out
    }

    /// Whether there is a record for `key`, complete or being written.
    package func hasSnapshot(_ key: SnapshotKey) throws -> Bool {
        try txn.contains(db.snapshots, key.bytes)
    }

    /// Whether `key` is a snapshot: a record that is not being written.
    package func snapshotExists(_ key: SnapshotKey) throws -> Bool {
        try txn.withValue(db.snapshots, key.bytes) { try !SnapshotRecord.isBeingWritten($0, key: key.description) } ?? false
    }

    package func snapshotCount() throws -> Int {
        try txn.count(db.snapshots)
    }

    /// Every snapshot in key order, its record decoded (or the error that
    /// decoding it raised, for verify to report).
    /// Records still being written are left out.
    package func forEachSnapshot(_ body: (SnapshotKey, Result<SnapshotRecord, any Error>) throws -> Void) throws {
        try txn.forEach(db.snapshots) { k, v in
            let key = try SnapshotKey(bytes: k)
            if (try? SnapshotRecord.isBeingWritten(v, key: key.description)) == true { return true }
            try body(key, Result { try SnapshotRecord.decode(v, key: key.description, part: part(of: key)) })
            return true
        }
    }

    /// Writes a snapshot's record (already encoded) and its access time.
    package func putSnapshot(_ key: SnapshotKey, encodedRecord: [UInt8], accessed: Int64) throws {
        try txn.put(db.snapshots, key.bytes, encodedRecord)
        try setLastAccess(key, accessed)
    }

    /// Writes a snapshot's record of `size` bytes, encoded by `write` straight
    /// into the transaction's pages (at many files it is the largest value),
    /// and its access time.
    package func putSnapshot(_ key: SnapshotKey, recordSize size: Int, accessed: Int64,
                             _ write: (UnsafeMutableRawBufferPointer) throws -> Void) throws {
        try txn.putReserved(db.snapshots, key.bytes, size: size, write)
        try setLastAccess(key, accessed)
    }

    package func lastAccess(_ key: SnapshotKey) throws -> Int64? {
        guard let v = try txn.get(db.access, key.bytes) else { return nil }
        return try v.withUnsafeBytes { b in
            var r = ByteReader(b, what: "access \(key)")
            return try r.i64()
        }
    }

    package func setLastAccess(_ key: SnapshotKey, _ nanos: Int64) throws {
        var w = ByteWriter()
        w.i64(nanos)
        try txn.put(db.access, key.bytes, w.bytes)
    }

    /// Every snapshot's last access, in key order.
    package func forEachAccess(_ body: (SnapshotKey, Int64) throws -> Void) throws {
        try txn.forEach(db.access) { k, v in
            var r = ByteReader(v, what: "access")
            let t = try r.i64()
            try body(try SnapshotKey(bytes: k), t)
            return true
        }
    }

    /// The oldest last access of any snapshot, nil when there is none.
    package func oldestAccess() throws -> Int64? {
        var oldest: Int64?
        try txn.forEach(db.access) { _, v in
            var r = ByteReader(v, what: "access")
            let t = try r.i64()
            oldest = min(oldest ?? t, t)
            return true
        }
        return oldest
    }

    /// Drops a snapshot's record, its access time and its references to
    /// `digests`. Content nothing references any more loses its record and
    /// goes to the trash (the caller unlinks it: `trashed`, `untrash`),
    /// except digests in `keep`, which the caller removes itself.
    /// Returns the trashed digests and the store bytes their records
    /// accounted for.
    package func dropSnapshot(_ key: SnapshotKey, digests: Set<Digest>,
                      keep: Set<Digest> = []) throws -> (trashed: [Digest], storeBytes: Int64) {
        // A version 3 record's parts go with it (those written so far, when
        // it was still being written).
        if let h = try? snapshotHeader(key) {
            for i in 0..<h.parts { try txn.delete(db.parts, SnapshotRecord.partKey(key.bytes, i)) }
        }
        try txn.delete(db.snapshots, key.bytes)
        try txn.delete(db.access, key.bytes)
        var trashed: [Digest] = []
        var bytes: Int64 = 0
        for d in digests.sorted() {
            try txn.delete(db.refs, d.key, value: key.bytes)
            guard try references(d).isEmpty, !keep.contains(d) else { continue }
            if let c = try contentRecord(d) { bytes = bytes.saturatingAdd(c.storeBytes) }
            try txn.delete(db.content, d.key)
            try txn.put(db.trash, d.key, [])
            trashed.append(d)
        }
        return (trashed, bytes)
    }
}

// MARK: content, references, inodes

extension MetadataTransaction {
    package func contentRecord(_ d: Digest) throws -> ContentRecord? {
        try txn.withValue(db.content, d.key) { try ContentRecord.decode($0, digest: d) }
    }

    package func putContent(_ d: Digest, _ rec: ContentRecord) throws {
        try txn.put(db.content, d.key, rec.encode())
    }

    /// Every content record in digest order, decoded (or its error).
    package func forEachContent(_ body: (Digest, Result<ContentRecord, any Error>) throws -> Void) throws {
        try txn.forEach(db.content) { k, v in
            let d = try Digest(key: k)
            try body(d, Result { try ContentRecord.decode(v, digest: d) })
            return true
        }
    }

    /// Forgets a digest: its content record and every reference to it.
    package func forgetContent(_ d: Digest) throws {
        try txn.delete(db.content, d.key)
        try txn.delete(db.refs, d.key)
    }

    package func references(_ d: Digest) throws -> [SnapshotKey] {
        var out: [SnapshotKey] = []
        try txn.forEach(db.refs, key: d.key) { _, v in
            out.append(try SnapshotKey(bytes: v))
            return true
        }
        return out
    }

    package func addReference(_ d: Digest, from key: SnapshotKey) throws {
        try addReference(d, fromKeyBytes: key.bytes)
    }

    /// The same, with the key's bytes made once for many digests.
    package func addReference(_ d: Digest, fromKeyBytes key: [UInt8]) throws {
        try txn.put(db.refs, d.key, key)
    }

    @discardableResult
    package func removeReference(_ d: Digest, from key: SnapshotKey) throws -> Bool {
        try txn.delete(db.refs, d.key, value: key.bytes)
    }

    /// Every reference, digest by digest.
    package func forEachReference(_ body: (Digest, SnapshotKey) throws -> Void) throws {
        try txn.forEach(db.refs) { k, v in
            try body(try Digest(key: k), try SnapshotKey(bytes: v))
            return true
        }
    }

    package func inode(dev: UInt64, ino: UInt64) throws -> InodeRecord? {
        try txn.withValue(db.inodes, InodeRecord.key(dev: dev, ino: ino)) { try InodeRecord.decode($0) }
    }

    package func putInode(dev: UInt64, ino: UInt64, _ rec: InodeRecord) throws {
        try txn.put(db.inodes, InodeRecord.key(dev: dev, ino: ino), rec.encode())
    }
}

// MARK: trash

extension MetadataTransaction {
    package func isTrashed(_ d: Digest) throws -> Bool {
        try txn.contains(db.trash, d.key)
    }

    /// Takes a digest out of the trash; false when it was not there.
    @discardableResult
    package func untrash(_ d: Digest) throws -> Bool {
        try txn.delete(db.trash, d.key)
    }

    /// Whether no digest is in the trash (the common case: a commit of
    /// many files then looks up none of them there).
    package func trashIsEmpty() throws -> Bool {
        try txn.count(db.trash) == 0
    }

    package func trashed() throws -> [Digest] {
        var out: [Digest] = []
        try txn.forEach(db.trash) { k, _ in
            out.append(try Digest(key: k))
            return true
        }
        return out
    }
}

// MARK: leases

extension MetadataTransaction {
    /// Records a lease under a key no other lease has.
    package func putNewLease(snapshots: [SnapshotKey], digests: [Digest], holder: String?) throws -> Lease {
        var key = Lease.newKey()
        while try txn.contains(db.leases, key) { key = Lease.newKey() }
        let lease = Lease(key: key, snapshots: snapshots, digests: digests, holder: holder)
        try putLease(lease)
        return lease
    }

    /// Writes a lease record under its own key.
    package func putLease(_ lease: Lease) throws {
        try txn.put(db.leases, lease.key, lease.encode())
    }

    package func removeLease(_ key: [UInt8]) throws {
        try txn.delete(db.leases, key)
    }

    package func leaseCount() throws -> Int {
        try txn.count(db.leases)
    }

    /// Every lease in force; those of dead holders (and unreadable records)
    /// are listed as expired.
    package func leaseView() throws -> LeaseView {
        let probe = LeaseProbe(dir: db.leaseFile.dir)
        var view = LeaseView()
        try txn.forEach(db.leases) { k, v in
            let key = Array(k)
            guard let lease = try? Lease.decode(key: key, v), lease.isAlive(probe) else {
                view.expired.append(key)
                return true
            }
            view.alive.insert(key)
            view.snapshots.formUnion(lease.snapshots)
            view.digests.formUnion(lease.digests)
            return true
        }
        return view
    }
}
