import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
import CShim
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// Someone who can write to the output directory races a restore: a
/// directory the restore already checked (or made) is swapped, over and
/// over, with a symlink to a directory outside. Not one byte may land
/// outside, whether the restore fails on the way or succeeds.
@Suite("Restore races", .serialized)
struct RaceTests {
    /// The racer's own thread, so it never waits behind the restore's work.
    static let racerPool = BlockingPool(threads: 1)

    static let dirs = ["d0", "d1", "d2", "d3"]
    static let filesPerDir = 500

    /// Swaps `a` and `b` (renameat2 RENAME_EXCHANGE) until `stop` is set;
    /// returns how many swaps happened (a missing name just retries).
    static func race(_ a: String, _ b: String, until stop: AtomicFlag) -> Task<Int, Error> {
        Task { try await racerPool.run {
            var swaps = 0
            while !stop.isSet {
                if cshim_rename_exchange(AT_FDCWD, a, AT_FDCWD, b) == 0 { swaps += 1 }
            }
            // Leave the directory at its own name for the checks after.
            var st = Glibc.stat()
            if lstat(a, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK { _ = cshim_rename_exchange(AT_FDCWD, a, AT_FDCWD, b) }
            return swaps
        } }
    }

    static func makeSources(_ fx: Fixture) throws -> [FileRequest] {
        var files: [FileRequest] = []
        for d in dirs {
            for i in 0..<filesPerDir {
                let rel = "\(d)/f\(i)"
                try writeFile(fx.base + "/" + rel, "\(rel) holds some bytes\n")
                files.append(FileRequest(rel, readOnly: i % 3 == 0))
            }
        }
        return files
    }

    /// Every entry under `outside`, with its bytes.
    static func contents(of outside: String) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for rel in try allFiles(under: outside) { out[rel] = try readFile(outside + "/" + rel) }
        return out
    }

    /// A store with the fixture's directory registry and content, so a
    /// fresh root restores from remote.
    static func open(_ root: String, _ fx: Fixture) throws -> Snapshotter {
        var o = StoreOptions()
        o.gc.intervalSeconds = 0
        o.registry = RegistrySettings(endpoint: "file://\(fx.dir)/registry")
        o.content = ContentSettings(url: "file://\(fx.dir)/content")
        return try Snapshotter(root: root, options: o)
    }

    @Test("a directory swapped for a symlink to outside during restore gets nothing written outside",
          arguments: [(false, false), (true, false), (false, true), (true, true)])
    func swappedDirectoryGetsNothingOutside(overwrite: Bool, remote: Bool) async throws {
        try await withFixture { fx in
            let files = try Self.makeSources(fx)
            let outside = fx.dir + "/outside"
            try makeDirs(outside)
            if overwrite {
                // Files of the same names outside, which a rename through
                // the symlink would replace.
                for i in 0..<Self.filesPerDir { try writeFile(outside + "/f\(i)", "outside \(i)\n") }
            }
            let before = try Self.contents(of: outside)
            var totalSwaps = 0
            var outcomes: [String] = []
            var escaped = 0
            // Publishes too (to the directories), for the remote rounds.
            let source = try Self.open(fx.root, fx)
            do {
                _ = try await source.snapshot(SnapshotRequest(name: "race", version: "v1", baseDir: fx.base, files: files))
                for round in 0..<2 {
                    let out = fx.output("out\(round)")
                    try makeDirs(out)
                    if overwrite {
                        _ = try await source.restore(RestoreRequest(name: "race", version: "v1", outputDir: out))
                    }
                    try posix("symlink") { symlink(outside, out + "/evil") }
                    // A fresh store has only the registry: it restores from remote.
                    let store = remote ? try Self.open(fx.dir + "/remote-\(round)", fx) : source
                    // The racer starts once every path was checked: at the
                    // first event that carries the totals.
                    let stop = AtomicFlag()
                    let racer = Locked<Task<Int, Error>?>(nil)
                    let progress: ProgressHandler = { [out] e in
                        if e.filesTotal > 0 {
                            racer.withLock { if $0 == nil { $0 = Self.race(out + "/d0", out + "/evil", until: stop) } }
                        }
                        return true
                    }
                    do {
                        _ = try await store.restore(RestoreRequest(name: "race", version: "v1", outputDir: out, overwrite: overwrite),
                                                    progress: progress)
                        outcomes.append("ok")
                    } catch let e as SnapshotterError {
                        outcomes.append("\(e.code)")
                    }
                    stop.set()
                    if remote { await store.close() }
                    if let task = racer.withLock({ $0 }) { totalSwaps += try await task.value }
                    let after = try Self.contents(of: outside)
                    let added = Set(after.keys).subtracting(before.keys).count
                    let changed = before.filter { after[$0.key] != $0.value }.count
                    escaped += added + changed
                    #expect(added == 0 && changed == 0, "round \(round): \(added) new names and \(changed) changed or removed files outside")
                }
            } catch {
                await source.close()
                throw error
            }
            await source.close()
            print("restore race (overwrite \(overwrite), remote \(remote)): \(totalSwaps) swaps, outcomes \(outcomes), \(escaped) files escaped")
            #expect(totalSwaps > 0, "the racer never swapped: the test proved nothing")
        }
    }
}
