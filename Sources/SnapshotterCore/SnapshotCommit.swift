#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

/// The commit of a snapshot: one write transaction records it, its
/// content and its references.
extension Snapshotter {
    struct MissingContent: Error { var indices: [Int] }

    /// What a commit recorded: the snapshot, and over the stored files as
    /// they ended (repaired ones included) what the report counts.
    struct Committed {
        /// Without its files unless the commit was asked to keep them.
        var info: SnapshotInfo
        var fileCount: Int
        var totalSize: Int64
        var filesStored = 0
        var filesKnownByInode = 0
        var bytesRead: Int64 = 0

        /// Counts what the report says of `stored`.
        mutating func count(_ stored: StoredFiles) {
            filesStored = stored.facts.count(where: \.created)
            filesKnownByInode = stored.facts.count(where: \.knownByInode)
            bytesRead = stored.facts.saturatingTotal { $0.bytesRead }
        }

        /// Adds what the report says of one group of files.
        mutating func add(_ stored: StoredFiles) {
            filesStored += stored.facts.count(where: \.created)
            filesKnownByInode += stored.facts.count(where: \.knownByInode)
            bytesRead = bytesRead.saturatingAdd(stored.facts.saturatingTotal { $0.bytesRead })
            totalSize = totalSize.saturatingAdd(stored.files.saturatingTotal(\.size))
        }
    }

    /// `commitSnapshot` of files given one by one.
    func commitSnapshot(_ key: SnapshotKey, stored: [StoredFile], config givenConfig: [UInt8]?, keepFiles: Bool = true,
                        cancel: CancellationFlag, repair: ([Int], StoredFiles) throws -> StoredFiles) throws -> Committed {
        try commitSnapshot(key, stored: StoredFiles(stored), config: givenConfig, keepFiles: keepFiles, cancel: cancel, repair: repair)
    }

    /// One write transaction records the snapshot, its content and its
    /// references. Content another process deleted meanwhile is put back by
    /// `repair` (stored again from the source), then the commit is retried.
    /// `stored` is put in path order if it is not; the indices `repair`
    /// gets are of that order. A given config (fetched from a registry) is
    /// kept only when it is not the canonical encoding of the files.
    /// Unless `keepFiles`, the list is dropped once the record holds it:
    /// a version 1 record's config is then written from the record's own
    /// files, and the list is not resident with the whole record.
    func commitSnapshot(_ key: SnapshotKey, stored initial: consuming StoredFiles, config givenConfig: [UInt8]?,
                        placement: Placement? = nil, keepFiles: Bool = true, cancel: CancellationFlag,
                        repair: ([Int], StoredFiles) throws -> StoredFiles) throws -> Committed {
        var stored = consume initial
        if !stored.isSortedByPath { stored.sortByPath() }
        let kept = givenConfig.flatMap { [files = stored.files] in $0 == SnapshotConfig.encode(sorted: FileList(files)) ? nil : $0 }
        let now = Sys.nowNanos()
        for attempt in 0..<4 {
            // Made again after a repair, which may have read changed files.
            var files: FileList? = FileList(stored.files)
            var order = Self.digestOrder(stored.files)
            // The record is encoded straight into LMDB's pages (version 3:
            // its parts; their size is a version 2 record's without config).
            let version = options.recordFormat
            let config = try SnapshotRecord.configStored(version: version, files: FileList(stored.files), givenConfig: kept)
            let recordSize = SnapshotRecord.encodedSize(version: min(version, 2), files: FileList(stored.files), config: config)
            try meta.requireRoom("snapshot \(key)", recordBytes: recordSize, digests: order.digests)
            var committed = Committed(info: SnapshotInfo(name: key.name, version: key.version, createdNanos: now, lastAccessedNanos: now,
                                                         files: keepFiles ? stored.files : [], givenConfig: kept),
                                      fileCount: stored.count, totalSize: stored.files.saturatingTotal(\.size))
            // Beside the barrier, the lock is taken once half the content
            // is renamed; a retry comes after the barrier.
            let beside = attempt == 0 ? placement : nil
            if let beside {
                beside.waitForHalf()
                SnapshotHooks.reach(.placing, root: root)
            }
            do {
                try meta.write { txn in
                    // Last chance to stop: a throw here aborts the commit.
                    try cancel.check()
                    // What the barrier renames from now on (its digests are
                    // let go when the call returns, before the record).
                    try self.writeSnapshot(txn, key, stored: stored, order: order, now: now, underLock: beside?.lockTaken())
                    // Nothing is committed before the content is in place
                    // and durable; content someone else placed first is not ours.
                    stored.notCreated(placedFirstByOthers: try placement?.finish() ?? [])
                    // Only the tables needed these: not kept while the record
                    // fills LMDB's pages. Nothing is retried after this.
                    committed.count(stored)
                    stored.facts = []
                    order = DigestOrder(indices: [], runs: [0])
                    // What they held, freed below LMDB's pages, is given back
                    // too (under 1 ms).
                    let count = stored.count
                    Self.trimHeap(files: count)
                    if version == 3 {
                        if let list = files { try txn.putSnapshot(key, parts: list, created: now, given: kept, accessed: now) }
                    } else {
                        try writeRecord(txn, key, version: version, size: recordSize, config: config, now: now,
                                        files: &files, stored: &stored, keepFiles: keepFiles, count: count)
                    }
                }
                return committed
            } catch let missing as MissingContent {
                // Repaired and committed again only after the barrier.
                try placement?.finish()
                guard attempt < 3 else { break }
                try cancel.check()
                stored = try repair(missing.indices, stored)
                try store.syncDirectories()
            }
        }
        throw SnapshotterError(.busy, "snapshot \(key): its content kept being deleted by another process")
    }

    /// Writes a version 1 or 2 record. Unless `keepFiles`, the list is
    /// dropped once the record holds the files, and a version 1 record's
    /// config is written from the record's own copy.
    private func writeRecord(_ txn: MetadataTransaction, _ key: SnapshotKey, version: UInt8, size: Int,
                             config: SnapshotRecord.StoredConfig, now: Int64, files: inout FileList?,
                             stored: inout StoredFiles, keepFiles: Bool, count: Int) throws {
        try txn.putSnapshot(key, recordSize: size, accessed: now) { buffer in
            var w = BufferWriter(buffer)
            // Bound only in these blocks: nothing else holds the
            // list when it is dropped.
            if let list = files {
                SnapshotRecord.writeFiles(to: &w, version: version, created: now, files: list)
            }
            if keepFiles {
                if let list = files { SnapshotRecord.writeConfig(to: &w, version: version, config: config, files: list) }
            } else {
                // The record holds the files now: the list goes, and
                // the config is written from the record's copy.
                files = nil
                stored.files = []
                Self.trimHeap(files: count)
                let written = try SnapshotRecord.WrittenFiles(UnsafeRawBufferPointer(rebasing: buffer[..<w.count]),
                                                              key: key.description)
                SnapshotRecord.writeConfig(to: &w, version: version, config: config, files: written.list)
                try written.check()
            }
            guard w.exact else { throw SnapshotterError(.internal, "snapshot \(key): the record is not the size computed for it") }
        }
    }

    /// The files in digest order: each digest's files come together, so
    /// the commit looks at it once with no table of digests, and writes the
    /// content and reference tables in key order. Sorted as (digest, index)
    /// pairs: 16 bytes each, no file touched.
    struct DigestOrder {
        var indices: [Int]
        /// Where each digest's run of indices starts, and the end.
        var runs: [Int]
        var digests: Int { runs.count - 1 }
    }

    /// How many digests the commit looks up between two releases of the
    /// map's pages.
    static let releaseEvery = 8192

    static func digestOrder(_ files: [SnapshotFile]) -> DigestOrder {
        var pairs = files.indices.map { (files[$0].digest.value, $0) }
        pairs.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        var runs = [0]
        for k in pairs.indices.dropFirst() where pairs[k].0 != pairs[k - 1].0 { runs.append(k) }
        if !pairs.isEmpty { runs.append(pairs.count) }
        return DigestOrder(indices: pairs.map(\.1), runs: runs)
    }

    /// Checks and records the content, references and inodes of the
    /// files; the caller writes the record in the same transaction.
    /// `underLock`: content the barrier renames while this transaction
    /// holds the writer lock, which is there without a look. Unless
    /// `fresh` (a group of a snapshot committed in groups), the record may
    /// exist already.
    func writeSnapshot(_ txn: MetadataTransaction, _ key: SnapshotKey, stored: StoredFiles, order: DigestOrder,
                       now: Int64, underLock: Placement.UnderLock?, fresh: Bool = true) throws {
        if fresh, try txn.hasSnapshot(key) {
            throw SnapshotterError(.alreadyExists, "snapshot \(key) already exists")
        }
        let refKey = key.bytes
        let trashEmpty = try txn.trashIsEmpty()
        var missing: [Int] = []
        for r in order.runs.indices.dropLast() {
            try writeDigest(txn, refKey, stored, order.indices[order.runs[r]..<order.runs[r + 1]], trashEmpty: trashEmpty,
                            underLock: underLock, now: now, missing: &missing)
            // The tables' pages read so far need not stay resident (what the
            // transaction changes is in its own dirty pages).
            if r % Self.releaseEvery == Self.releaseEvery - 1 { meta.releaseMapPages() }
        }
        // Nothing is written when something is missing: the throw aborts.
        if !missing.isEmpty { throw MissingContent(indices: missing.sorted()) }
    }

    /// Takes back one digest the trash holds and checks it is still there
    /// (deleters only unlink inside a write transaction, so what exists now
    /// stays until this one commits), then records its content, the
    /// reference and the inodes of `files` (all of that digest). A digest
    /// with a content record and no trash entry cannot have lost its file:
    /// deleters drop the record and put the trash entry in one transaction
    /// before they unlink, and the sweep only unlinks files no record names.
    /// Only the others are looked at on disk, but for content the barrier
    /// renames under this transaction's lock.
    /// Without `inodes` (a snapshot committed in groups writes them with
    /// its parts), the inode records are left to the caller.
    func writeDigest(_ txn: MetadataTransaction, _ refKey: [UInt8], _ stored: StoredFiles, _ indices: ArraySlice<Int>,
                     trashEmpty: Bool, underLock: Placement.UnderLock?, now: Int64, missing: inout [Int], inodes: Bool = true) throws {
        guard let firstIndex = indices.first else { return }
        let files = stored.files, facts = stored.facts
        let d = files[firstIndex].digest
        let inTrash = try !trashEmpty && txn.untrash(d)
        let record = try txn.contentRecord(d)
        let trusted = !inTrash && record != nil
        let placed = underLock.map { u in indices.contains { u.placed(ordinal: Int(facts[$0].renameOrdinal)) } } == true
        let present = try trusted || placed || store.contentStat(d) != nil
        var linked = trusted && record?.hasLink == true
        if !linked, indices.contains(where: { files[$0].readOnly }) { linked = try store.linkStat(d) != nil }
        for i in indices where !present || (files[i].readOnly && !linked) { missing.append(i) }
        guard missing.isEmpty else { return }
        let hasLink = record?.hasLink == true || linked
        if record == nil || record?.hasLink != hasLink {
            try txn.putContent(d, ContentRecord(encodedSize: facts[firstIndex].encodedSize, logicalSize: files[firstIndex].size,
                                                created: record?.created ?? now, hasLink: hasLink))
        }
        try txn.addReference(d, fromKeyBytes: refKey)
        if inodes { try writeInodes(txn, stored, indices) }
    }

    /// Records the inodes of the read-only files `indices` linked into the
    /// store (a file known by its inode matched that inode's record exactly).
    func writeInodes(_ txn: MetadataTransaction, _ stored: StoredFiles, _ indices: some Sequence<Int>) throws {
        for i in indices where !stored.facts[i].knownByInode {
            if let l = stored.facts[i].linkedInode {
                let f = stored.files[i]
                try txn.putInode(dev: l.dev, ino: l.ino, InodeRecord(digest: f.digest, size: f.size,
                                                                     mtimeNanos: f.mtimeNanos, ctimeNanos: l.ctimeNanos))
            }
        }
    }
}
