#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

/// Delete: a snapshot's records go in one write transaction, then the
/// content nothing references any more (through the trash).
extension Snapshotter {
    /// Deletes a snapshot: drops its references and deletes the content that
    /// nothing references any more.
    @discardableResult
    public func delete(name: String, version: String) async throws -> DeleteReport {
        try Naming.validateName(name)
        try Naming.validateVersion(version)
        let key = SnapshotKey(name: name, version: version)
        return try await operation(nil) { _ in
            try await pool.run {
                guard let r = try self.deleteSnapshot(key, unlessAccessedAfter: nil) else {
                    throw SnapshotterError(.notFound, "snapshot \(key) not found")
                }
                return r
            }
        }
    }

    /// Deletes a snapshot's records and then the content only it used.
    /// With `unlessAccessedAfter`, a snapshot accessed after that time (or
    /// already gone) is left alone and nil is returned.
    func deleteSnapshot(_ key: SnapshotKey, unlessAccessedAfter cutoff: Int64?) throws -> DeleteReport? {
        try deleteSnapshots([key], unlessAccessedAfter: cutoff).first?.1
    }

    /// Deletes several snapshots' records in one write transaction, then
    /// their unreferenced content in another; returns those deleted. With
    /// `unlessAccessedAfter` (the collector), snapshots accessed after it,
    /// leased or already gone are skipped; without it they are errors.
    func deleteSnapshots(_ keys: [SnapshotKey], unlessAccessedAfter cutoff: Int64?) throws -> [(SnapshotKey, DeleteReport)] {
        let dropped = try meta.write { txn -> [(key: SnapshotKey, trashed: [Digest], storeBytes: Int64)] in
            let leased = try txn.leaseView().snapshots
            var out: [(key: SnapshotKey, trashed: [Digest], storeBytes: Int64)] = []
            for key in keys {
                guard let rec = try txn.snapshot(key, config: false) else {
                    if cutoff != nil { continue }
                    if try txn.hasSnapshot(key) {
                        throw SnapshotterError(.busy, "snapshot \(key) is being written; try again when it is done")
                    }
                    throw SnapshotterError(.notFound, "snapshot \(key) not found")
                }
                if let cutoff, let accessed = try txn.lastAccess(key), accessed >= cutoff { continue }
                if leased.contains(key) {
                    if cutoff != nil { continue }
                    throw SnapshotterError(.busy, "snapshot \(key) is in use by an operation in flight; try again when it is done")
                }
                let (trashed, bytes) = try txn.dropSnapshot(key, digests: Set(rec.files.map(\.digest)))
                out.append((key, trashed, bytes))
            }
            return out
        }
        let (_, bytes) = try removeTrashed(dropped.flatMap(\.trashed))
        // Bytes freed are measured for the whole batch; each report gets
        // its share by content count.
        let total = max(1, dropped.reduce(0) { $0 + $1.trashed.count })
        return dropped.map { key, digests, released in
            (key, DeleteReport(contentFilesRemoved: digests.count, bytesFreed: bytes.share(digests.count, of: total),
                               storeBytesReleased: released))
        }
    }

    /// Unlinks trashed digests' files unless a snapshot took them back or
    /// an operation leases them; returns how many were removed and the
    /// bytes freed. The unlinks happen inside the write transaction, so no
    /// snapshot can start to depend on a file between check and unlink.
    func removeTrashed(_ digests: [Digest]) throws -> (Int, Int64) {
        if digests.isEmpty { return (0, 0) }
        return try meta.write { txn -> (Int, Int64) in
            let leased = try txn.leaseView().digests
            var removed = 0
            var bytes: Int64 = 0
            for d in digests {
                guard try txn.isTrashed(d) else { continue }
                guard try txn.references(d).isEmpty, try txn.contentRecord(d) == nil else {
                    try txn.untrash(d)
                    continue
                }
                // Leased content stays in the trash; a later collection retries.
                if leased.contains(d) { continue }
                if let st = try Sys.lstatIfExists(store.contentPath(d)) { bytes = bytes.saturatingAdd(Int64(st.st_size)) }
                if let st = try Sys.lstatIfExists(store.linkPath(d)), st.st_nlink <= 1 { bytes = bytes.saturatingAdd(Int64(st.st_size)) }
                try store.removeContent(d)
                try txn.untrash(d)
                removed += 1
            }
            return (removed, bytes)
        }
    }

    /// Finishes deletions a crashed process left in the trash.
    func emptyTrash() throws {
        _ = try removeTrashed(try meta.read { try $0.trashed() })
    }
}
