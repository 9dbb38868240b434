#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

extension Snapshotter {
    /// Fills the store with synthetic metadata and tiny content files for
    /// the collector benchmark: `snapshots` snapshots of `filesPerSnapshot`
    /// files each, every file with its own content record. All last
    /// accessed long ago. Not for production stores.
    @_spi(Benchmarks)
    public func populateForBenchmark(snapshots: Int, filesPerSnapshot: Int) async throws {
        try await pool.run {
            let now = Sys.nowNanos()
            var next: UInt64 = 0x1000
            let batch = 500
            for first in stride(from: 0, to: snapshots, by: batch) {
                try self.meta.write { txn in
                    for s in first..<min(first + batch, snapshots) {
                        let key = SnapshotKey(name: "bench", version: "v\(s)")
                        var files: [SnapshotFile] = []
                        for f in 0..<filesPerSnapshot {
                            next += 1
                            let d = Digest(next)
                            let path = self.store.contentPath(d)
                            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o444)
                            if fd >= 0 { Glibc.close(fd) }
                            try txn.putContent(d, ContentRecord(encodedSize: 20, logicalSize: 0, created: now, hasLink: false))
                            try txn.addReference(d, from: key)
                            files.append(SnapshotFile(relativePath: "f\(f)", digest: d, readOnly: false, mode: 0o644,
                                                      uid: 0, gid: 0, size: 0, mtimeNanos: now))
                        }
                        let record = SnapshotRecord(created: now, files: files, givenConfig: nil)
                        try txn.putSnapshot(key, encodedRecord: try record.encode(),
                                            accessed: now - Int64(86_400 + s) * 1_000_000_000)
                    }
                }
            }
        }
    }
}
