#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

extension Snapshotter {
    /// Takes a lease on a snapshot and its content for the length of `body`.
    /// The lease is written in a write transaction, so a collector or
    /// delete either sees it or finished before it (and then the record is
    /// gone, which `check` reports).
    /// `check` runs in the same transaction and returns more digests to
    /// lease (those of a record it reads there).
    /// `onSuccess` runs in the transaction that releases the lease, when
    /// `body` succeeded (a restore records its access time there).
    func withLease<T: Sendable>(snapshots: [SnapshotKey], digests: [Digest],
                                check: @escaping @Sendable (MetadataTransaction) throws -> [Digest] = { _ in [] },
                                onSuccess: (@Sendable (MetadataTransaction) throws -> Void)? = nil,
                                _ body: () async throws -> T) async throws -> T {
        let lease = try await pool.run {
            // The file is locked before any record names it.
            let holder = try self.meta.leaseFile.name()
            return try self.meta.write { txn -> Lease in
                let more = try check(txn)
                return try txn.putNewLease(snapshots: snapshots, digests: Array(Set(digests + more)), holder: holder)
            }
        }
        let release: @Sendable (Bool) async throws -> Void = { succeeded in
            try await self.pool.run {
                try self.meta.write { txn in
                    try txn.removeLease(lease.key)
                    if succeeded, let onSuccess { try onSuccess(txn) }
                }
            }
        }
        let result: T
        do {
            result = try await body()
        } catch {
            try? await release(false)
            throw error
        }
        try await release(true)
        return result
    }

    /// Removes the leases of holders that are gone, then their lease files.
    func expireLeases() throws -> Int {
        let expired = try meta.write { txn in
            let view = try txn.leaseView()
            for k in view.expired { try txn.removeLease(k) }
            return view.expired.count
        }
        let files = try meta.leaseFile.removeDead()
        if expired > 0 || files > 0 {
            Log.info("gc \(root): expired \(expired) leases and removed \(files) lease files of processes that are gone")
        }
        return expired
    }

    /// Snapshots and digests leased now (for tests and stats).
    func activeLeases() throws -> LeaseView {
        try meta.read { try $0.leaseView() }
    }
}
