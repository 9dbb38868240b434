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
    func commitSnapshot(_ key: SnapshotKey, stored initial: [StoredFile], config givenConfig: [UInt8]?,
                        cancel: CancellationFlag,
                        repair: ([Int], [StoredFile]) throws -> [StoredFile]) throws -> Committed {
        var stored = initial
        let files = stored.map(\.file)
        let config = givenConfig ?? SnapshotConfig.encode(files)
        let sortedFiles = files.sorted { $0.relativePath.utf8.lexicographicallyPrecedes($1.relativePath.utf8) }
        let now = Sys.nowNanos()
        // Encoded once: at many files the record is the largest buffer.
        let recordBytes = SnapshotRecord(created: now, files: sortedFiles, config: config).encode()
        try meta.requireRoom("snapshot \(key)", recordBytes: recordBytes.count, digests: Set(files.map(\.digest)).count)
        for attempt in 0..<4 {
            do {
                try meta.write { txn in
                    // Last chance to stop: a throw here aborts the commit.
                    try cancel.check()
                    try self.writeSnapshot(txn, key, record: recordBytes, stored: stored, now: now)
                }
                let info = SnapshotInfo(name: key.name, version: key.version, createdNanos: now, lastAccessedNanos: now,
                                        files: sortedFiles, config: config)
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

    private func writeSnapshot(_ txn: MetadataTransaction, _ key: SnapshotKey, record: [UInt8],
                               stored: [StoredFile], now: Int64) throws {
        if try txn.hasSnapshot(key) {
            throw SnapshotterError(.alreadyExists, "snapshot \(key) already exists")
        }
        // Take back content the trash holds, then check every file is still
        // there: deleters only unlink inside a write transaction, so what
        // exists now stays until this one commits.
        var missing: [Int] = []
        var checked: [Digest: Bool] = [:]
        var checkedLinks: [Digest: Bool] = [:]
        // A digest with a content record and no trash entry cannot have lost
        // its file: deleters drop the record and put the trash entry in one
        // transaction before they unlink, and the sweep only unlinks files
        // no record names. Only the others are looked at on disk.
        var records: [Digest: ContentRecord] = [:]
        for (i, s) in stored.enumerated() {
            let d = s.file.digest
            if checked[d] == nil {
                let inTrash = try txn.untrash(d)
                if !inTrash, let rec = try txn.contentRecord(d) {
                    records[d] = rec
                    checked[d] = true
                    if rec.hasLink { checkedLinks[d] = true }
                } else {
                    checked[d] = try store.contentStat(d) != nil
                }
            }
            var ok = checked[d] == true
            if s.file.readOnly {
                if checkedLinks[d] == nil { checkedLinks[d] = try store.linkStat(d) != nil }
                ok = ok && checkedLinks[d] == true
            }
            if !ok { missing.append(i) }
        }
        if !missing.isEmpty { throw MissingContent(indices: missing) }
        var written = Set<Digest>()
        for s in stored {
            let d = s.file.digest
            let existing = try records[d] ?? txn.contentRecord(d)
            let hasLink = (existing?.hasLink ?? false) || checkedLinks[d] == true
            if written.insert(d).inserted || existing?.hasLink != hasLink {
                if existing == nil || existing?.hasLink != hasLink {
                    try txn.putContent(d, ContentRecord(encodedSize: s.encodedSize, logicalSize: s.file.size,
                                                              created: existing?.created ?? now, hasLink: hasLink))
                }
                try txn.addReference(d, from: key)
            }
            if let l = s.linkedInode {
                try txn.putInode(dev: l.dev, ino: l.ino,
                                 InodeRecord(digest: d, size: s.file.size, mtimeNanos: s.file.mtimeNanos, ctimeNanos: l.ctimeNanos))
            }
        }
        try txn.putSnapshot(key, encodedRecord: record, accessed: now)
    }
}
