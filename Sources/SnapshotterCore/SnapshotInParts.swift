#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

/// A local snapshot of many files in a store that writes version 3 records
/// (RecordParts.swift): the files are prepared, stored, made durable and
/// committed a group at a time, each group's content, references, inodes
/// and parts in a transaction of its own, so neither the lists in memory
/// nor LMDB's dirty pages grow with the file count. Until the last
/// transaction marks it complete, the record says it is being written and
/// by which lease: it is no snapshot for anyone else, its references keep
/// its content, and when its writer is gone (killed) the collector drops
/// what it wrote (`dropAbandonedSnapshots`). A failed or canceled snapshot
/// drops it itself.
extension Snapshotter {
    /// Whether a snapshot of `count` files is committed in groups.
    func commitsInGroups(count: Int, local: Bool) -> Bool {
        local && options.recordFormat == 3 && count > options.groupsAbove
    }

    func snapshotInGroups(_ key: SnapshotKey, files listed: [FileRequest], base: Int32,
                          reporter: ProgressReporter, cancel flag: CancellationFlag) async throws -> Committed {
        let now = Sys.nowNanos()
        try await pool.run { try self.checkNewSnapshot(key, files: listed) }
        let writer = try await pool.run { try self.beginInGroups(key, created: now) }
        var header = SnapshotRecord.Header(created: now, count: 0, parts: 0, writer: writer, given: nil)
        var committed = Committed(info: SnapshotInfo(name: key.name, version: key.version, createdNanos: now, lastAccessedNanos: now,
                                                     files: [], givenConfig: nil),
                                  fileCount: listed.count, totalSize: 0)
        do {
            for start in stride(from: 0, to: listed.count, by: options.groupFiles) {
                let stored = try await storeGroup(key, listed[start..<min(start + options.groupFiles, listed.count)], base: base,
                                                  reporter: reporter, cancel: flag)
                // What the group's preparing and storing freed (the workers'
                // arenas above all) goes back before its commit.
                Self.trimHeap(files: stored.count)
                let before = header
                let (after, final) = try await pool.run {
                    try self.commitGroup(key, stored: stored, header: before, now: now, base: base, cancel: flag)
                }
                header = after
                committed.add(final)
                SnapshotHooks.reach(.groupCommitted(files: header.count), root: root)
                Self.trimHeap(files: options.groupFiles)
            }
            let complete = header
            try await pool.run { try self.completeInGroups(key, header: complete, now: now) }
        } catch {
            // What was written goes; a collector does it if this cannot.
            try? await pool.run { try self.abandonInGroups(key, writer: writer) }
            throw error
        }
        return committed
    }

    /// Prepares and stores one group, its content made durable; what only
    /// that needed goes when this returns.
    private func storeGroup(_ key: SnapshotKey, _ group: ArraySlice<FileRequest>, base: Int32, reporter: ProgressReporter,
                            cancel flag: CancellationFlag) async throws -> StoredFiles {
        let prepared = try await prepareSnapshot(key, base: base, files: Array(group), cancel: flag, checks: false,
                                                 mapFaults: Self.mapFaults)
        return try await storeAll(key, prepared, base: base, placeBeside: false, reporter: reporter, cancel: flag).0
    }

    /// Takes the lease that keeps the snapshot's record while it is being
    /// written, and writes a header that says so.
    private func beginInGroups(_ key: SnapshotKey, created: Int64) throws -> [UInt8] {
        // The file is locked before any record names it.
        let holder = try meta.leaseFile.name()
        return try meta.write { txn in
            if try txn.hasSnapshot(key) { throw SnapshotterError(.alreadyExists, "snapshot \(key) already exists") }
            let lease = try txn.putNewLease(snapshots: [key], digests: [], holder: holder)
            try txn.putSnapshotHeader(key, SnapshotRecord.Header(created: created, count: 0, parts: 0, writer: lease.key, given: nil))
            return lease.key
        }
    }

    /// Files whose content and references one transaction records: taken
    /// in digest order, they fall in a narrow range of the digest-keyed
    /// tables, whose pages a transaction copies when it changes them (a
    /// group's digests in one transaction would change nearly every page).
    static let digestsPerTransaction = 512

    /// Page faults a thread takes between two releases of the map's pages
    /// (MapPageBudget): a page read through the map brings its neighbours
    /// with it (the kernel maps up to 64 KiB around a fault), so look-ups
    /// spread over a table would keep tens of megabytes resident.
    static let mapFaults = 64

    /// One group: its parts, its inodes and the header first, in one
    /// transaction; then its content and references, `digestsPerTransaction`
    /// files at a time in digest order. Content another process deleted
    /// meanwhile is stored again and that transaction made again. Returns
    /// the header after the group and the group as committed.
    private func commitGroup(_ key: SnapshotKey, stored initial: StoredFiles, header: SnapshotRecord.Header, now: Int64,
                             base: Int32, cancel: CancellationFlag) throws -> (SnapshotRecord.Header, StoredFiles) {
        var stored = initial
        let files = FileList(stored.files)
        let size = SnapshotRecord.partSize(files, files.indices)
        let order = Self.digestOrder(stored.files)
        try meta.requireRoom("snapshot \(key)", recordBytes: size, digests: order.digests)
        let after = try meta.write { txn -> SnapshotRecord.Header in
            try cancel.check()
            try Self.checkWriter(txn, key, header)
            var next = header
            next.parts += try txn.putParts(key, files, from: header.parts)
            next.count += stored.count
            // In inode order: a group's files were mostly made together.
            try self.writeInodes(txn, stored, stored.facts.indices.sorted {
                let a = stored.facts[$0].linkedInode, b = stored.facts[$1].linkedInode
                return (a?.dev ?? 0, a?.ino ?? 0) < (b?.dev ?? 0, b?.ino ?? 0)
            })
            try txn.putSnapshotHeader(key, next)
            return next
        }
        meta.releaseMapPages()
        var r = 0
        while r < order.digests {
            var end = r
            while end < order.digests && order.runs[end] - order.runs[r] < Self.digestsPerTransaction { end += 1 }
            try commitDigests(key, &stored, order, r..<end, header: after, now: now, base: base, cancel: cancel)
            // The table pages it read need not stay resident.
            meta.releaseMapPages()
            r = end
        }
        return (after, stored)
    }

    /// The content and references of the digests `runs` of `order`.
    private func commitDigests(_ key: SnapshotKey, _ stored: inout StoredFiles, _ order: DigestOrder, _ runs: Range<Int>,
                               header: SnapshotRecord.Header, now: Int64, base: Int32, cancel: CancellationFlag) throws {
        let refKey = key.bytes
        for attempt in 0..<4 {
            do {
                try meta.write { txn in
                    try cancel.check()
                    try Self.checkWriter(txn, key, header)
                    let trashEmpty = try txn.trashIsEmpty()
                    var missing: [Int] = []
                    var budget = MapPageBudget(self.meta, faults: Self.mapFaults)
                    for k in runs {
                        try self.writeDigest(txn, refKey, stored, order.indices[order.runs[k]..<order.runs[k + 1]], trashEmpty: trashEmpty,
                                             underLock: nil, now: now, missing: &missing, inodes: false)
                        budget.tick()
                    }
                    if !missing.isEmpty { throw MissingContent(indices: missing.sorted()) }
                }
                return
            } catch let missing as MissingContent {
                guard attempt < 3 else { break }
                try cancel.check()
                let before = missing.indices.map { stored.files[$0] }
                stored = try storeAgain(missing.indices, of: stored, base: base, cancel: cancel)
                try store.syncDirectories()
                // Its part already names the file as it was: one that changed
                // since cannot be put back as it is recorded.
                if let i = zip(missing.indices, before).first(where: { stored.files[$0.0] != $0.1 })?.0 {
                    throw SnapshotterError(.busy, "snapshot \(key): the content of \(stored.files[i].relativePath.debugDescription) was deleted by another process and the file changed since; snapshot again")
                }
            }
        }
        throw SnapshotterError(.busy, "snapshot \(key): its content kept being deleted by another process")
    }

    /// Refuses to go on when the record is not the one this snapshot wrote.
    private static func checkWriter(_ txn: MetadataTransaction, _ key: SnapshotKey, _ header: SnapshotRecord.Header) throws {
        guard let current = try txn.snapshotHeader(key), current.writer == header.writer, current.parts == header.parts else {
            throw SnapshotterError(.busy, "snapshot \(key): its record was dropped while it was being written")
        }
    }

    /// Marks the record complete, records its access time and lets the
    /// lease go, in one transaction.
    private func completeInGroups(_ key: SnapshotKey, header: SnapshotRecord.Header, now: Int64) throws {
        try meta.write { txn in
            guard let writer = header.writer, let current = try txn.snapshotHeader(key), current == header else {
                throw SnapshotterError(.busy, "snapshot \(key): its record was dropped while it was being written")
            }
            var done = header
            done.writer = nil
            try txn.putSnapshotHeader(key, done)
            try txn.setLastAccess(key, now)
            try txn.removeLease(writer)
        }
    }

    /// Drops what this snapshot wrote (its parts, references and the content
    /// only they kept), and its lease.
    private func abandonInGroups(_ key: SnapshotKey, writer: [UInt8]) throws {
        let trashed: [Digest]
        do {
            trashed = try meta.write { txn -> [Digest] in
                try txn.removeLease(writer)
                guard try txn.snapshotHeader(key)?.writer == writer else { return [] }
                return try txn.dropSnapshot(key, digests: try txn.digestsWritten(key)).trashed
            }
        } catch {
            // Without the lease the collector drops it.
            try meta.write { try $0.removeLease(writer) }
            throw error
        }
        _ = try removeTrashed(trashed)
    }

    /// Drops the records whose writer's lease is gone (a process killed
    /// while it wrote them), with what they wrote; with `only`, that
    /// snapshot's alone. Returns how many.
    func dropAbandonedSnapshots(only: SnapshotKey? = nil) throws -> Int {
        let (keys, trashed) = try meta.write { txn -> ([SnapshotKey], [Digest]) in
            let beingWritten: [(SnapshotKey, [UInt8])]
            if let only {
                beingWritten = try txn.snapshotHeader(only)?.writer.map { [(only, $0)] } ?? []
            } else {
                beingWritten = try txn.snapshotsBeingWritten()
            }
            if beingWritten.isEmpty { return ([], []) }
            let alive = try txn.leaseView().alive
            var keys: [SnapshotKey] = [], trashed: [Digest] = []
            for (key, writer) in beingWritten where !alive.contains(writer) {
                trashed += try txn.dropSnapshot(key, digests: try txn.digestsWritten(key)).trashed
                keys.append(key)
            }
            return (keys, trashed)
        }
        _ = try removeTrashed(trashed)
        for key in keys { Log.info("\(root): dropped snapshot \(key), whose writer was gone before it was complete") }
        return keys.count
    }
}
