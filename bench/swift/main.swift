// The collector and stats over a large store, against listing the store's
// directories in the same run.
//   swift run -c release snapshotter-bench [snapshots] [files-per-snapshot]
@_spi(Benchmarks) import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }

/// `x` with `digits` decimals, right-aligned in `width`.
func fmt(_ x: Double, _ digits: Int, width: Int = 0) -> String {
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (x * p).rounded() / p
    var s = "\(r)"
    if let dot = s.firstIndex(of: ".") {
        let dec = s.distance(from: dot, to: s.endIndex) - 1
        if dec < digits { s += String(repeating: "0", count: digits - dec) }
        if digits == 0 { s = String(s[..<dot]) }
    }
    return s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}

/// readdir of both storage directories, counting entries: the baseline.
func listDirectories(_ root: String) -> (Double, Int) {
    let t0 = now()
    var n = 0
    for dir in [root + "/storage/content/xxh3", root + "/storage/snapshot/xxh3"] {
        guard let d = opendir(dir) else { continue }
        while readdir(d) != nil { n += 1 }
        closedir(d)
    }
    return (now() - t0, n)
}

/// A disk that is as full as the policy under test wants.
struct FixedDisk: DiskUsageProvider {
    var usedPercent: Double
    func usage(of path: String) throws -> DiskUsage {
        DiskUsage(totalBytes: 1_000_000, usedBytes: Int64(usedPercent * 10_000))
    }
}

let args = CommandLine.arguments
let snapshots = args.count > 1 ? Int(args[1]) ?? 10_000 : 10_000
let perSnapshot = args.count > 2 ? Int(args[2]) ?? 10 : 10
var template = "/tmp/snapshotter-gcbench-XXXXXX".utf8CString
let base = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
let root = base + "/root"

var options = StoreOptions()
options.gc.intervalSeconds = 0
options.diskUsage = FixedDisk(usedPercent: 50)
let store = try Snapshotter(root: root, options: options)
let t0 = now()
try await store.populateForBenchmark(snapshots: snapshots, filesPerSnapshot: perSnapshot)
print("populated \(snapshots) snapshots and \(snapshots * perSnapshot) content records in \(fmt(now() - t0, 1)) s")

var listTimes: [Double] = [], gcTimes: [Double] = [], statsTimes: [Double] = []
var entries = 0
for _ in 0..<5 {
    let (lt, n) = listDirectories(root)
    listTimes.append(lt)
    entries = n
    var t = now()
    let r = try await store.gc()
    gcTimes.append(now() - t)
    precondition(r.snapshotsEvicted == 0)
    t = now()
    let s = try await store.stats()
    statsTimes.append(now() - t)
    precondition(s.snapshots == snapshots)
}
// A pass that evicts through the byte budget: about 100 snapshots go.
var policy = GCPolicy()
policy.minRetentionSeconds = 0
policy.batchSize = 10
policy.maxStoreBytes = Int64((snapshots - 100) * perSnapshot * 20) * 70 / 90
let t = now()
let evicted = try await store.gc(policy: policy)
let evictTime = now() - t

let list = median(listTimes)
print("")
print("collector over \(snapshots) snapshots / \(snapshots * perSnapshot) content records (medians of 5)")
print("  list storage directories (\(entries) entries) \(fmt(list * 1000, 1, width: 8)) ms   (baseline)")
print("  gc pass, nothing to evict              \(fmt(median(gcTimes) * 1000, 1, width: 8)) ms   \(fmt(median(gcTimes) / list, 1))x the listing")
print("  stats                                  \(fmt(median(statsTimes) * 1000, 1, width: 8)) ms   \(fmt(median(statsTimes) / list, 2))x the listing")
print("  gc pass evicting \(evicted.snapshotsEvicted) snapshots (budget)  \(fmt(evictTime * 1000, 1, width: 8)) ms")
await store.close()
_ = system("rm -rf '\(base)'")
