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
        if !stored.isSortedByPath { stored.sort { $0.file.relativePath.utf8.lexicographicallyPrecedes($1.file.relativePath.utf8) } }
        let files = stored.map(\.file)
        let kept = givenConfig.flatMap { $0 == SnapshotConfig.encode(files) ? nil : $0 }
        let now = Sys.nowNanos()
        // Encoded once: at many files the record is the largest buffer.
        let recordBytes = SnapshotRecord.encode(created: now, files: files, givenConfig: kept)
        try meta.requireRoom("snapshot \(key)", recordBytes: recordBytes.count, digests: Set(files.lazy.map(\.digest)).count)
        for attempt in 0..<4 {
            do {
                try meta.write { txn in
                    // Last chance to stop: a throw here aborts the commit.
                    try cancel.check()
                    try self.writeSnapshot(txn, key, record: recordBytes, stored: stored, now: now)
                }
                let info = SnapshotInfo(name: key.name, version: key.version, createdNanos: now, lastAccessedNanos: now,
                                        files: files, givenConfig: kept)
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

    /// What the commit learned of one digest.
    private struct DigestCheck {
        var present: Bool
        var linked: Bool?
        var record: ContentRecord?
        var written = false
    }

    private func writeSnapshot(_ txn: MetadataTransaction, _ key: SnapshotKey, record: [UInt8],
                               stored: [StoredFile], now: Int64) throws {
        if try txn.hasSnapshot(key) {
            throw SnapshotterError(.alreadyExists, "snapshot \(key) already exists")
        }
        // Take back content the trash holds, then check every file is still
        // there: deleters only unlink inside a write transaction, so what
        // exists now stays until this one commits.
        // A digest with a content record and no trash entry cannot have lost
        // its file: deleters drop the record and put the trash entry in one
        // transaction before they unlink, and the sweep only unlinks files
        // no record names. Only the others are looked at on disk.
        var checks: [Digest: DigestCheck] = [:]
        checks.reserveCapacity(stored.count)
        var missing: [Int] = []
        for (i, s) in stored.enumerated() {
            let d = s.file.digest
            var c: DigestCheck
            if let known = checks[d] { c = known } else {
                let inTrash = try txn.untrash(d)
                let rec = try txn.contentRecord(d)
                if !inTrash, let rec {
                    c = DigestCheck(present: true, linked: rec.hasLink ? true : nil, record: rec)
                } else {
                    c = DigestCheck(present: try store.contentStat(d) != nil, linked: nil, record: rec)
                }
            }
            if s.file.readOnly && c.linked == nil { c.linked = try store.linkStat(d) != nil }
            checks[d] = c
            if !c.present || (s.file.readOnly && c.linked != true) { missing.append(i) }
        }
        if !missing.isEmpty { throw MissingContent(indices: missing) }
        for s in stored {
            let d = s.file.digest
            guard var c = checks[d] else { continue }
            if !c.written {
                let hasLink = c.record?.hasLink == true || c.linked == true
                if c.record == nil || c.record?.hasLink != hasLink {
                    try txn.putContent(d, ContentRecord(encodedSize: s.encodedSize, logicalSize: s.file.size,
                                                        created: c.record?.created ?? now, hasLink: hasLink))
                }
                try txn.addReference(d, from: key)
                c.written = true
                checks[d] = c
            }
            // A file known by its inode matched that inode's record exactly.
            if let l = s.linkedInode, !s.knownByInode {
                try txn.putInode(dev: l.dev, ino: l.ino,
                                 InodeRecord(digest: d, size: s.file.size, mtimeNanos: s.file.mtimeNanos, ctimeNanos: l.ctimeNanos))
            }
        }
        try txn.putSnapshot(key, encodedRecord: record, accessed: now)
    }
}

extension Array where Element == Snapshotter.StoredFile {
    /// In strictly increasing path order (as a record keeps them).
    var isSortedByPath: Bool {
        indices.dropFirst().allSatisfy { self[$0 - 1].file.relativePath.utf8.lexicographicallyPrecedes(self[$0].file.relativePath.utf8) }
    }
}
