#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

/// What the store holds: the list of snapshots and one snapshot's record.
extension Snapshotter {
    public func list() async throws -> [SnapshotSummary] {
        try await operation(nil) { _ in
            try await pool.run {
                try self.meta.read { txn in
                    var out: [SnapshotSummary] = []
                    try txn.forEachSnapshot { key, decoded in
                        let rec = try decoded.get()
                        let accessed = try txn.lastAccess(key) ?? rec.created
                        out.append(SnapshotSummary(name: key.name, version: key.version, createdNanos: rec.created,
                                                   lastAccessedNanos: accessed, fileCount: rec.files.count,
                                                   totalSize: try rec.files.checkedTotal("size", code: .corrupt) { $0.size }))
                    }
                    return out
                }
            }
        }
    }

    /// A snapshot's record: its files and its config.
    public func info(name: String, version: String) async throws -> SnapshotInfo {
        try Naming.validateName(name)
        try Naming.validateVersion(version)
        let key = SnapshotKey(name: name, version: version)
        return try await operation(nil) { _ in
            try await pool.run {
                try self.meta.read { txn in
                    guard let rec = try txn.snapshot(key) else {
                        throw SnapshotterError(.notFound, "snapshot \(key) not found")
                    }
                    return SnapshotInfo(name: name, version: version, createdNanos: rec.created,
                                        lastAccessedNanos: try txn.lastAccess(key) ?? rec.created,
                                        files: rec.files, givenConfig: rec.givenConfig)
                }
            }
        }
    }
}
