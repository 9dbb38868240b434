#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

/// How full the filesystem holding the store is. A seam, so tests can make
/// the disk look full.
public protocol DiskUsageProvider: Sendable {
    func usage(of path: String) throws -> DiskUsage
}

public struct DiskUsage: Sendable, Equatable {
    public var totalBytes: Int64
    public var usedBytes: Int64
    public init(totalBytes: Int64, usedBytes: Int64) {
        self.totalBytes = totalBytes
        self.usedBytes = usedBytes
    }
    public var usedPercent: Double { totalBytes > 0 ? Double(usedBytes) * 100 / Double(totalBytes) : 0 }
}

/// statvfs(2) of the real filesystem.
public struct StatvfsDiskUsage: DiskUsageProvider {
    public init() {}
    public func usage(of path: String) throws -> DiskUsage {
        var st = statvfs()
        _ = try Sys.call(.statvfs, "statvfs \(path)") { statvfs(path, &st) }
        let total = Int64(st.f_blocks) * Int64(st.f_frsize)
        let free = Int64(st.f_bfree) * Int64(st.f_frsize)
        return DiskUsage(totalBytes: total, usedBytes: total - free)
    }
}

/// Garbage-collection policy, with the Go version's defaults.
public struct GCPolicy: Sendable {
    /// Background collection interval; 0 turns the collector off.
    public var intervalSeconds: Double = 300
    /// Disk use (percent) that starts eviction.
    public var highWatermarkPercent: Double = 90
    /// Disk use (percent) where eviction stops.
    public var lowWatermarkPercent: Double = 70
    /// Snapshots evicted per round before usage is measured again.
    public var batchSize: Int = 10
    /// Snapshots accessed more recently than this are never evicted.
    public var minRetentionSeconds: Double = 300
    /// Bytes the store may use; 0 means no budget. A second trigger.
    public var maxStoreBytes: Int64 = 0
    /// Temporary and orphan files younger than this are left alone: they
    /// may belong to an operation in flight.
    public var orphanGraceSeconds: Double = 3600

    public init() {}
}

public struct GCReport: Sendable, Equatable {
    public var snapshotsEvicted: Int = 0
    public var contentFilesRemoved: Int = 0
    public var bytesFreed: Int64 = 0
    public var orphansRemoved: Int = 0
    public var elapsedNanos: Int64 = 0
}

public struct StoreStats: Sendable, Equatable {
    /// Bytes of the store's content files and read-only links.
    public var storeBytes: Int64
    public var contentFiles: Int
    public var snapshots: Int
    /// Oldest last-access time of any snapshot (ns), or nil when empty.
    public var oldestAccessNanos: Int64?
    public var disk: DiskUsage
}

extension Snapshotter {
    /// Store usage from the metadata (no directory walk).
    public func stats() async throws -> StoreStats {
        try await operation(nil) { _ in
            try await pool.run { try self.computeStats() }
        }
    }

    func computeStats() throws -> StoreStats {
        var stats = try meta.read { txn in
            var stats = StoreStats(storeBytes: 0, contentFiles: 0, snapshots: try txn.snapshotCount(),
                                   oldestAccessNanos: try txn.oldestAccess(), disk: DiskUsage(totalBytes: 0, usedBytes: 0))
            try txn.forEachContent { _, rec in
                stats.storeBytes = stats.storeBytes.saturatingAdd(try rec.get().storeBytes)
                stats.contentFiles += 1
            }
            return stats
        }
        stats.disk = try options.diskUsage.usage(of: root)
        return stats
    }

    /// Runs one collection now: evicts least recently used snapshots while
    /// the disk is above the high watermark (or the store above its budget)
    /// until below the low watermark, then sweeps orphans.
    public func gc(policy: GCPolicy? = nil, progress: ProgressHandler? = nil,
                   cancel: CancellationFlag? = nil) async throws -> GCReport {
        let policy = policy ?? options.gc
        guard policy.lowWatermarkPercent <= policy.highWatermarkPercent, policy.batchSize > 0 else {
            throw SnapshotterError.invalid("gc: low watermark must not exceed the high watermark, and batch size must be positive")
        }
        return try await operation(cancel) { flag in
            let started = Sys.monotonicNanos()
            let reporter = ProgressReporter(handler: progress, cancel: flag, minIntervalNanos: options.progressIntervalNanos)
            reporter.setPhase(.collecting)
            var report = try await pool.run {
                var r = GCReport()
                try self.evict(policy, into: &r, cancel: flag)
                return r
            }
            let orphans = try await pool.run {
                _ = try self.expireLeases()
                // Records whose writer is gone: what they wrote goes too.
                _ = try self.dropAbandonedSnapshots()
                try self.emptyTrash()
                return try self.sweepOrphans(graceSeconds: policy.orphanGraceSeconds)
            }
            report.orphansRemoved = orphans
            report.elapsedNanos = Int64(Sys.monotonicNanos() - started)
            reporter.finish()
            Log.info("gc \(root): evicted \(report.snapshotsEvicted) snapshots, removed \(report.contentFilesRemoved) content files (\(report.bytesFreed) bytes) and \(report.orphansRemoved) orphans")
            return report
        }
    }

    private func evict(_ policy: GCPolicy, into report: inout GCReport, cancel: CancellationFlag) throws {
        // Store bytes come from the metadata once, then are kept up to date
        // from what each eviction releases; the disk is measured each round.
        var storeBytes = try computeStats().storeBytes
        func over(_ watermark: Double) throws -> Bool {
            if policy.maxStoreBytes > 0 && Double(storeBytes) > Double(policy.maxStoreBytes) * watermark / policy.highWatermarkPercent {
                return true
            }
            return try options.diskUsage.usage(of: root).usedPercent > watermark
        }
        guard try over(policy.highWatermarkPercent) else { return }
        while try over(policy.lowWatermarkPercent) {
            try cancel.check()
            let cutoff = Sys.nowNanos() - Int64.nanos(seconds: policy.minRetentionSeconds)
            let candidates = try meta.read { txn -> [(SnapshotKey, Int64)] in
                var all: [(SnapshotKey, Int64)] = []
                let leased = try txn.leaseView().snapshots
                try txn.forEachAccess { key, t in
                    if t < cutoff && !leased.contains(key) { all.append((key, t)) }
                }
                return all.sorted { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
            }
            if candidates.isEmpty {
                Log.warn("gc \(root): over the limit but every snapshot is within its minimum retention or in use")
                return
            }
            // One batch, one transaction; each candidate is checked again
            // inside it (a restore may have touched or leased it since).
            let evicted = try deleteSnapshots(candidates.prefix(policy.batchSize).map(\.0), unlessAccessedAfter: cutoff)
            for (key, r) in evicted {
                report.snapshotsEvicted += 1
                report.contentFilesRemoved += r.contentFilesRemoved
                report.bytesFreed = report.bytesFreed.saturatingAdd(r.bytesFreed)
                storeBytes = storeBytes.saturatingAdd(-r.storeBytesReleased)
                Log.info("gc \(root): evicted \(key)")
            }
            if evicted.isEmpty { return }
        }
    }

    /// Removes temporary files older than the grace period, content files
    /// no record names and links whose content record is gone.
    func sweepOrphans(graceSeconds: Double) throws -> Int {
        let cutoff = Sys.nowNanos() - Int64.nanos(seconds: graceSeconds)
        func old(_ path: String) -> Bool {
            guard let st = try? Sys.lstatIfExists(path) else { return false }
            return Sys.mtimeNanos(st) < cutoff && Int64.nanos(wholeSeconds: Int64(st.st_ctim.tv_sec)) < cutoff
        }
        var removed = 0
        for dir in [store.contentDir, store.linkDir] {
            var candidates: [(Digest, String)] = []
            let names = try Directory.names(dir)
            // One read transaction finds the files no record names; only
            // those are looked at again, under the write lock.
            try meta.read { txn in
                for name in names {
                    let path = dir + "/" + name
                    if ContentStore.isTemp(name) {
                        if old(path) {
                            try Sys.unlinkIfExists(path)
                            removed += 1
                        }
                        continue
                    }
                    guard let d = try? Digest(hex: name) else { continue }
                    if try txn.contentRecord(d) == nil, old(path) { candidates.append((d, path)) }
                }
            }
            guard !candidates.isEmpty else { continue }
            // The record check and the unlink share one write transaction,
            // so a snapshot committing such a digest either sees the file or
            // stores it again.
            let gone = try meta.write { txn -> [String] in
                let leased = try txn.leaseView().digests
                var out: [String] = []
                for (d, path) in candidates {
                    guard try txn.contentRecord(d) == nil, try !txn.isTrashed(d), !leased.contains(d),
                          old(path) else { continue }
                    try Sys.unlinkIfExists(path)
                    out.append(path)
                }
                return out
            }
            removed += gone.count
            for path in gone { Log.info("gc \(root): removed orphan \(path)") }
        }
        return removed
    }
}
