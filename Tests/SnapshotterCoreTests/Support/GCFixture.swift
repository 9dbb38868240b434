import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote
#if canImport(Glibc)
import Glibc
#endif

/// A disk whose use is `other` bytes plus what the store's content files
/// take: evictions make it emptier, as on a real disk.
struct SimulatedDisk: DiskUsageProvider {
    var total: Int64
    var other: Int64
    var contentDir: String

    func usage(of path: String) throws -> DiskUsage {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: contentDir)) ?? []
        var used = other
        for n in names {
            let attrs = try? FileManager.default.attributesOfItem(atPath: contentDir + "/" + n)
            used += (attrs?[.size] as? NSNumber)?.int64Value ?? 0
        }
        return DiskUsage(totalBytes: total, usedBytes: used)
    }
}

/// A store on a simulated disk and snapshots `sb:v<i>` of one file each, for
/// the collection, lease, verify and stats suites.
struct GCFixture {
    let dir: String
    let root: String

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("gc-\(UUID().uuidString)").path
        root = dir + "/root"
        try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
    }

    func cleanup() { try? FileManager.default.removeItem(atPath: dir) }

    /// A store on a simulated 10 MB disk with `other` bytes used by others.
    func open(other: Int64 = 3_000_000) throws -> Snapshotter {
        var o = StoreOptions()
        o.gc.intervalSeconds = 0
        o.diskUsage = SimulatedDisk(total: 10_000_000, other: other, contentDir: root + "/storage/content/xxh3")
        return try Snapshotter(root: root, options: o)
    }

    /// Snapshot `name:v<i>` of one file of `size` distinct bytes.
    func make(_ store: Snapshotter, _ i: Int, size: Int = 1_000_000, readOnly: Bool = false) async throws {
        let path = "\(dir)/src/f\(i)"
        try Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* (i + 7) &+ i) }).write(to: URL(fileURLWithPath: path))
        _ = try await store.snapshot(SnapshotRequest(name: "sb", version: "v\(i)", baseDir: dir + "/src",
                                                     files: [FileRequest("f\(i)", readOnly: readOnly)]))
    }

    /// Sets last-access times so that v0 is the oldest.
    func age(_ store: Snapshotter, _ versions: [Int]) throws {
        let now = Sys.nowNanos()
        try store.meta.write { txn in
            for (rank, v) in versions.enumerated() {
                try txn.setLastAccess(SnapshotKey(name: "sb", version: "v\(v)"), now - Int64(3600 - rank) * 1_000_000_000)
            }
        }
    }

    func versions(_ store: Snapshotter) async throws -> [String] {
        try await store.list().map(\.version).sorted()
    }
}

/// A collection policy with the given watermarks, batch and retention.
func gcPolicy(high: Double, low: Double, batch: Int = 1, retention: Double = 0) -> GCPolicy {
    var p = GCPolicy()
    p.highWatermarkPercent = high
    p.lowWatermarkPercent = low
    p.batchSize = batch
    p.minRetentionSeconds = retention
    return p
}
