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

    /// What a commit recorded: the snapshot, and the stored files as they
    /// ended (repaired ones included).
    struct Committed {
        var info: SnapshotInfo
        var stored: [StoredFile]
    }

    /// One write transaction records the snapshot, its content and its
    /// references. Content another process deleted meanwhile is put back by
    /// `repair` (stored again from the source), then the commit is retried.
    /// `stored` is put in path order if it is not; the indices `repair`
    /// gets are of that order. A given config (fetched from a registry) is
    /// kept only when it is not the canonical encoding of the files.
    func commitSnapshot(_ key: SnapshotKey, stored initial: [StoredFile], config givenConfig: [UInt8]?,
                        cancel: CancellationFlag,
                        repair: ([Int], [StoredFile]) throws -> [StoredFile]) throws -> Committed {
        var stored = initial
        if !stored.isSortedByPath { stored.sort { PathGuard.precedes($0.file.relativePath, $1.file.relativePath) } }
        let canonical = { [stored] in SnapshotConfig.encode(sorted: FileList(count: stored.count) { stored[$0].file }) }
        let kept = givenConfig.flatMap { $0 == canonical() ? nil : $0 }
        let now = Sys.nowNanos()
        for attempt in 0..<4 {
            // Made again after a repair, which may have read changed files.
            let files = FileList(count: stored.count) { [stored] in stored[$0].file }
            let order = Self.digestOrder(stored)
            // The record is encoded straight into LMDB's pages, and the list
            // of files for the report made after the commit: at many files
            // each is as large as the record.
            let version = SnapshotRecord.writtenVersion
            let config = try SnapshotRecord.configStored(version: version, files: files, givenConfig: kept)
            let recordSize = SnapshotRecord.encodedSize(version: version, files: files, config: config)
            try meta.requireRoom("snapshot \(key)", recordBytes: recordSize, digests: order.digests)
            do {
                try meta.write { txn in
                    // Last chance to stop: a throw here aborts the commit.
                    try cancel.check()
                    try self.writeSnapshot(txn, key, stored: stored, order: order, now: now)
                    try txn.putSnapshot(key, recordSize: recordSize, accessed: now) { buffer in
                        var w = BufferWriter(buffer)
                        SnapshotRecord.write(to: &w, version: version, created: now, files: files, config: config)
                        guard w.exact else { throw SnapshotterError(.internal, "snapshot \(key): the record is not the size computed for it") }
                    }
                }
                let info = SnapshotInfo(name: key.name, version: key.version, createdNanos: now, lastAccessedNanos: now,
                                        files: stored.map(\.file), givenConfig: kept)
                return Committed(info: info, stored: stored)
            } catch let missing as MissingContent {
                guard attempt < 3 else { break }
                try cancel.check()
                stored = try repair(missing.indices, stored)
                try store.syncDirectories()
            }
        }
        throw SnapshotterError(.busy, "snapshot \(key): its content kept being deleted by another process")
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

    static func digestOrder(_ stored: [StoredFile]) -> DigestOrder {
        var pairs = stored.indices.map { (stored[$0].file.digest.value, $0) }
        pairs.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        var runs = [0]
        for k in pairs.indices.dropFirst() where pairs[k].0 != pairs[k - 1].0 { runs.append(k) }
        if !pairs.isEmpty { runs.append(pairs.count) }
        return DigestOrder(indices: pairs.map(\.1), runs: runs)
    }

    /// Checks and records the content, references and inodes of the
    /// files; the caller writes the record in the same transaction.
    private func writeSnapshot(_ txn: MetadataTransaction, _ key: SnapshotKey, stored: [StoredFile], order: DigestOrder,
                               now: Int64) throws {
        if try txn.hasSnapshot(key) {
            throw SnapshotterError(.alreadyExists, "snapshot \(key) already exists")
        }
        let refKey = key.bytes
        let trashEmpty = try txn.trashIsEmpty()
        var missing: [Int] = []
        for r in order.runs.indices.dropLast() {
            try writeDigest(txn, refKey, stored, order.indices[order.runs[r]..<order.runs[r + 1]], trashEmpty: trashEmpty,
                            now: now, missing: &missing)
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
    /// Only the others are looked at on disk.
    private func writeDigest(_ txn: MetadataTransaction, _ refKey: [UInt8], _ stored: [StoredFile], _ files: ArraySlice<Int>,
                             trashEmpty: Bool, now: Int64, missing: inout [Int]) throws {
        guard let firstIndex = files.first else { return }
        let d = stored[firstIndex].file.digest
        let inTrash = try !trashEmpty && txn.untrash(d)
        let record = try txn.contentRecord(d)
        let trusted = !inTrash && record != nil
        let present = try trusted || store.contentStat(d) != nil
        var linked = trusted && record?.hasLink == true
        if !linked, files.contains(where: { stored[$0].file.readOnly }) { linked = try store.linkStat(d) != nil }
        for i in files where !present || (stored[i].file.readOnly && !linked) { missing.append(i) }
        guard missing.isEmpty else { return }
        let hasLink = record?.hasLink == true || linked
        if record == nil || record?.hasLink != hasLink {
            try txn.putContent(d, ContentRecord(encodedSize: stored[firstIndex].encodedSize, logicalSize: stored[firstIndex].file.size,
                                                created: record?.created ?? now, hasLink: hasLink))
        }
        try txn.addReference(d, fromKeyBytes: refKey)
        // A file known by its inode matched that inode's record exactly.
        for i in files where !stored[i].knownByInode {
            if let l = stored[i].linkedInode {
                try txn.putInode(dev: l.dev, ino: l.ino, InodeRecord(digest: d, size: stored[i].file.size,
                                                                     mtimeNanos: stored[i].file.mtimeNanos, ctimeNanos: l.ctimeNanos))
            }
        }
    }
}

extension Array where Element == Snapshotter.StoredFile {
    /// In strictly increasing path order (as a record keeps them).
    var isSortedByPath: Bool {
        indices.dropFirst().allSatisfy { PathGuard.precedes(self[$0 - 1].file.relativePath, self[$0].file.relativePath) }
    }
}
