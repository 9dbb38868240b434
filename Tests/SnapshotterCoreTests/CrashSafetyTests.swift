import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// A snapshotctl process killed with SIGKILL at a random point (in a
/// snapshot, a restore or a delete) never leaves the store inconsistent nor
/// a partial file under a final name (TESTING.md: crash tests).
@Suite("Crash safety", .serialized)
struct CrashSafetyTests {
    /// About 65 MiB of data (97 MiB logical): read-only files that are
    /// hard-linked, read-write files that are re-encoded, a sparse file and
    /// small files. Each round rewrites one file and sometimes replaces a
    /// read-only file by a new inode, so every snapshot has new content.
    final class Workload {
        let base: String
        var readOnly = (0..<5).map { "ro/r\($0).bin" }
        let readWrite = ["rw/s0.bin", "rw/s1.bin", "rw/var.bin", "rw/sparse.bin"] + (0..<40).map { "small/f\($0).txt" }
        /// Digests of the files as they are now.
        var digests: [String: Digest] = [:]

        init(base: String) throws {
            self.base = base
            for (i, p) in readOnly.enumerated() { try write(p, patternBytes(8 << 20, seed: UInt64(i)), mode: 0o444) }
            try write("rw/s0.bin", patternBytes(8 << 20, seed: 10))
            try write("rw/s1.bin", patternBytes(8 << 20, seed: 11))
            try write("rw/var.bin", patternBytes(8 << 20, seed: 12))
            try writeSparseFile(base + "/rw/sparse.bin", size: 32 << 20, data: [(16 << 20, patternBytes(1 << 20, seed: 13))])
            digests["rw/sparse.bin"] = try spf1Digest(base + "/rw/sparse.bin")
            for i in 0..<40 { try write("small/f\(i).txt", patternBytes(4096 + i, seed: 100 + UInt64(i))) }
        }

        func write(_ rel: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
            // A new inode each time (write aside, rename over), as a
            // checkpoint writer would, so old read-only links keep their bytes.
            let tmp = base + "/" + rel + ".new"
            try writeFile(tmp, bytes, mode: mode, mtimeNanos: fixedMtime + Int64(bytes.count))
            try posix("rename") { rename(tmp, base + "/" + rel) }
            digests[rel] = try spf1Digest(base + "/" + rel)
        }

        func mutate(round: Int) throws {
            try write("rw/var.bin", patternBytes(8 << 20, seed: 1000 + UInt64(round)))
            if round % 2 == 0 {
                try write(readOnly[round % 5], patternBytes(8 << 20, seed: 2000 + UInt64(round)), mode: 0o444)
            }
        }

        func snapshotArgs(root: String, version: String) -> [String] {
            ["snapshot", "--root", root, "--name", "crash", "--version", version, "--base-dir", base, "-q"]
                + readOnly.flatMap { ["--ro", $0] } + readWrite.flatMap { ["--rw", $0] }
        }
    }

    /// Opens the store afresh and checks its invariants: no problem but
    /// orphan content (a crash may leave content no record names yet), every
    /// listed snapshot records what was snapshotted and restores exactly
    /// (its decoded files hashed the first time it is checked).
    static func checkStore(_ fx: Fixture, expected: [String: [String: Digest]], checked: inout Set<String>,
                           context: String) async throws {
        try await withStore(fx) { store in
            let report = try await store.verify()
            let serious = report.problems.filter { $0.kind != .orphanContent }
            #expect(serious == [], "\(context): \(serious)")
            for s in try await store.list() {
                let info = try await store.info(name: s.name, version: s.version)
                let recorded = Dictionary(uniqueKeysWithValues: info.files.map { ($0.relativePath, $0.digest) })
                #expect(recorded == expected[s.version], "\(context): snapshot \(s.version) records other content")
                let out = fx.output("check")
                _ = try await store.restore(RestoreRequest(name: s.name, version: s.version, outputDir: out))
                try expectRestored(info, in: out, store: fx, hashing: checked.contains(s.version) ? .none : .readWrite)
                checked.insert(s.version)
                try FileManager.default.removeItem(atPath: out)
            }
        }
    }

    /// After a killed restore, every file under a final name is complete;
    /// everything else is a temporary file.
    static func checkKilledRestore(_ out: String, _ info: SnapshotInfo, context: String) throws -> (complete: Int, temps: Int) {
        let byPath = Dictionary(uniqueKeysWithValues: info.files.map { ($0.relativePath, $0) })
        var complete = 0, temps = 0
        for rel in try allFiles(under: out) {
            if isTempName((rel as NSString).lastPathComponent) {
                temps += 1
                continue
            }
            guard let f = byPath[rel] else {
                Issue.record("\(context): unexpected file \(rel) in the output")
                continue
            }
            try expectComplete(f, at: out + "/" + rel)
            complete += 1
        }
        return (complete, temps)
    }

    static func elapsed<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
        let start = ContinuousClock.now
        let r = try await body()
        return (r, ContinuousClock.now - start)
    }

    @Test("snapshotctl killed with SIGKILL at random points leaves a consistent store and no partial file")
    func sigkillAtRandomPoints() async throws {
        let ctl = try snapshotctlPath()
        let seed = ProcessInfo.processInfo.environment["SNAPSHOTTER_CRASH_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        var rng = SplitMix64(seed: seed)
        let rounds = 10
        try await withFixture { fx in
            let work = try Workload(base: fx.base)
            var expected: [String: [String: Digest]] = [:]
            func run(_ args: [String], killAfter: Duration?) async throws -> Child.Exit {
                let child = try Child(ctl, args, scratch: fx.dir)
                if let killAfter {
                    try await Task.sleep(for: killAfter)
                    child.kill()
                }
                return await child.wait()
            }

            // Uninterrupted runs, to know how long each operation takes.
            expected["base"] = work.digests
            var exit = try await run(work.snapshotArgs(root: fx.root, version: "base"), killAfter: nil)
            try #require(exit.status == 0 && !exit.signaled, "\(exit)")
            try work.mutate(round: 0)
            expected["base2"] = work.digests
            let (exit2, snapshotTime) = try await Self.elapsed {
                try await run(work.snapshotArgs(root: fx.root, version: "base2"), killAfter: nil)
            }
            try #require(exit2.status == 0 && !exit2.signaled, "\(exit2)")
            let restoreArgs = { (version: String, out: String) in
                ["restore", "--root", fx.root, "--name", "crash", "--version", version, "--output", out, "-q"]
            }
            let (exit3, restoreTime) = try await Self.elapsed {
                try await run(restoreArgs("base", fx.output("timing")), killAfter: nil)
            }
            try #require(exit3.status == 0 && !exit3.signaled, "\(exit3)")
            // How long a child takes to start and open the store: kills are
            // spread from half of that to a little past the whole operation.
            let (exit4, startup) = try await Self.elapsed {
                try await run(["list", "--root", fx.root], killAfter: nil)
            }
            try #require(exit4.status == 0 && !exit4.signaled, "\(exit4)")
            // Kills land between half the start-up time and most of the way
            // through the operation (measured with start-up included), so
            // nearly every round kills a child mid-operation even on a
            // loaded machine.
            // The timings were taken once; when the machine gets faster
            // (or was busy then) children finish before their kill, so
            // every child that does shrinks the later delays.
            var scale = 1.0
            func delay(_ whole: Duration) -> Duration {
                let low = Int64(Double(startup.nanos / 2) * scale)
                let high = max(low + 1, Int64(Double(whole.nanos * 4 / 5) * scale))
                return .nanoseconds(Int64.random(in: low...high, using: &rng))
            }
            func finished(_ exit: Child.Exit) -> Bool {
                if !exit.signaled { scale = max(0.05, scale * 0.6) }
                return !exit.signaled
            }
            var checked = Set<String>()

            var killed = (snapshots: 0, restores: 0, deletes: 0)
            var killedTemps = 0
            for round in 1...rounds {
                let context = "seed \(seed), round \(round)"
                try work.mutate(round: round)
                let version = "k\(round)"
                expected[version] = work.digests
                exit = try await run(work.snapshotArgs(root: fx.root, version: version), killAfter: delay(snapshotTime))
                if !finished(exit) { killed.snapshots += 1 } else { #expect(exit.status == 0, "\(context): \(exit)") }
                try await Self.checkStore(fx, expected: expected, checked: &checked, context: context + " after a killed snapshot")

                // Kill a restore of some snapshot that exists.
                let versions = try await withStore(fx) { try await $0.list().map(\.version) }
                let victim = versions[Int.random(in: 0..<versions.count, using: &rng)]
                let out = fx.output("killed-\(round)")
                exit = try await run(restoreArgs(victim, out), killAfter: delay(restoreTime))
                if !finished(exit) { killed.restores += 1 } else { #expect(exit.status == 0, "\(context): \(exit)") }
                try await withStore(fx) { store in
                    let info = try await store.info(name: "crash", version: victim)
                    // The restore can be redone over what the killed one left.
                    let (_, temps) = try Self.checkKilledRestore(out, info, context: context + " restore of \(victim)")
                    killedTemps += temps
                    _ = try await store.restore(RestoreRequest(name: "crash", version: victim, outputDir: out, overwrite: true))
                    try expectRestored(info, in: out, store: fx, hashing: .none)
                    // The killed restore's temporary files went with the rerun.
                    let left = try allFiles(under: out).filter { isTempName(($0 as NSString).lastPathComponent) }
                    #expect(left.isEmpty, "\(context): temporary files left after the rerun: \(left)")
                }
                try FileManager.default.removeItem(atPath: out)
                try await Self.checkStore(fx, expected: expected, checked: &checked, context: context + " after a killed restore")

                // Every other round, kill a delete too: what it began is
                // finished (or undone) by the next open, never half-visible.
                let deletable = versions.filter { $0 != "base" }
                if round % 2 == 0, !deletable.isEmpty {
                    let doomed = deletable[Int.random(in: 0..<deletable.count, using: &rng)]
                    exit = try await run(["delete", "--root", fx.root, "--name", "crash", "--version", doomed],
                                         killAfter: delay(startup * 2))
                    if exit.signaled { killed.deletes += 1 } else { #expect(exit.status == 0, "\(context): \(exit)") }
                    try await Self.checkStore(fx, expected: expected, checked: &checked, context: context + " after a killed delete")
                }
            }
            // A schedule that never killed anything would prove nothing.
            #expect(killed.snapshots + killed.restores > 0, "seed \(seed): no child was killed before it finished")
            print("crash test: seed \(seed), \(killed.snapshots)/\(rounds) snapshots, \(killed.restores)/\(rounds) restores and "
                  + "\(killed.deletes)/\(rounds / 2) deletes killed before they finished, \(killedTemps) temporary files left by killed restores "
                  + "(start-up \(startup), snapshot \(snapshotTime), restore \(restoreTime))")
        }
    }
}

extension Duration {
    var nanos: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
}
