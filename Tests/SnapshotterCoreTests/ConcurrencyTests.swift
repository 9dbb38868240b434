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

/// Many snapshots at once, in one process and in two, share content safely.
@Suite("Concurrency")
struct ConcurrencyTests {
    @Test("16 concurrent snapshots sharing content all restore correctly and leave the store consistent")
    func sixteenConcurrentSnapshots() async throws {
        try await withFixture { fx in
            // Shared by every snapshot: read-only and read-write, some sparse.
            let shared: [FileRequest] = [
                FileRequest("shared/model.bin", readOnly: true), FileRequest("shared/vocab.txt", readOnly: true),
                FileRequest("shared/config.json"), FileRequest("shared/sparse.bin"),
            ]
            try writeFile(fx.base + "/shared/model.bin", patternBytes(3 << 20, seed: 1), mode: 0o444)
            try writeFile(fx.base + "/shared/vocab.txt", patternBytes(100_000, seed: 2), mode: 0o444)
            try writeFile(fx.base + "/shared/config.json", "{\"layers\":32}\n")
            try writeSparseFile(fx.base + "/shared/sparse.bin", size: 8 << 20, data: [(4 << 20, patternBytes(70_000, seed: 3))])
            for i in 0..<16 {
                // Each snapshot also has files of its own, and every pair of
                // neighbours has one in common under different names.
                try writeFile(fx.base + "/own/\(i)/state.bin", patternBytes(500_000 + i, seed: 100 + UInt64(i)))
                try writeFile(fx.base + "/own/\(i)/pair.bin", patternBytes(64_000, seed: 1000 + UInt64(i / 2)))
                try writeFile(fx.base + "/own/\(i)/ro.bin", patternBytes(1000 + i, seed: 2000 + UInt64(i)), mode: 0o400)
            }
            try await withStore(fx) { store in
                let reports = try await withThrowingTaskGroup(of: (Int, SnapshotReport).self) { group in
                    for i in 0..<16 {
                        group.addTask {
                            let files = shared + [FileRequest("own/\(i)/state.bin"), FileRequest("own/\(i)/pair.bin"),
                                                  FileRequest("own/\(i)/ro.bin", readOnly: true)]
                            let r = try await store.snapshot(SnapshotRequest(name: "conc", version: "v\(i)", baseDir: fx.base, files: files))
                            return (i, r)
                        }
                    }
                    var out: [Int: SnapshotReport] = [:]
                    for try await (i, r) in group { out[i] = r }
                    return out
                }
                #expect(reports.count == 16)
                #expect(store.activeOperations == 0)
                // 4 shared + 16 × (state + ro) + 8 pair contents.
                #expect(try fx.contentFiles().count == 4 + 32 + 8)
                #expect(try fx.linkFiles().count == 2 + 16)
                #expect(try fx.storageTemps() == [])
                let newContent = reports.values.reduce(0) { $0 + $1.filesStored }
                #expect(newContent == 4 + 32 + 8, "each content file was put in place by exactly one snapshot")
                let verify = try await store.verify()
                #expect(verify.problems == [])
                #expect(verify.snapshotsChecked == 16)

                try await withThrowingTaskGroup(of: Void.self) { group in
                    for i in 0..<16 {
                        group.addTask {
                            _ = try await store.restore(RestoreRequest(name: "conc", version: "v\(i)", outputDir: fx.output("out\(i)")))
                        }
                    }
                    try await group.waitForAll()
                }
                for i in 0..<16 {
                    let info = try #require(reports[i]?.info)
                    try expectRestored(info, in: fx.output("out\(i)"), store: fx)
                    for f in info.files {
                        #expect(try sameBytes(fx.base + "/" + f.relativePath, fx.output("out\(i)") + "/" + f.relativePath))
                    }
                }
            }
        }
    }

    @Test("snapshots and deletes racing on shared content keep the store consistent")
    func snapshotsRacingDeletes() async throws {
        try await withFixture { fx in
            for i in 0..<6 {
                try writeFile(fx.base + "/f\(i).bin", patternBytes(200_000, seed: UInt64(i)), mode: i % 2 == 0 ? 0o444 : 0o644)
            }
            let files = (0..<6).map { FileRequest("f\($0).bin", readOnly: $0 % 2 == 0) }
            try await withStore(fx) { store in
                // Each round: a new version is taken while the previous one,
                // the only other user of the same content, is deleted.
                _ = try await store.snapshot(SnapshotRequest(name: "race", version: "r0", baseDir: fx.base, files: files))
                for round in 1...12 {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            _ = try await store.snapshot(SnapshotRequest(name: "race", version: "r\(round)", baseDir: fx.base, files: files))
                        }
                        group.addTask { try await store.delete(name: "race", version: "r\(round - 1)") }
                        try await group.waitForAll()
                    }
                    #expect(try await store.list().map(\.version) == ["r\(round)"])
                }
                #expect(try await store.verify().problems == [])
                #expect(try fx.contentFiles().count == 6)
                _ = try await store.restore(RestoreRequest(name: "race", version: "r12", outputDir: fx.output()))
                try expectRestored(try await store.info(name: "race", version: "r12"), in: fx.output(), store: fx)
            }
        }
    }

    @Test("two snapshotctl processes snapshotting overlapping new content into one root both succeed")
    func twoProcessesIntoOneRoot() async throws {
        let ctl = try snapshotctlPath()
        try await withFixture { fx in
            let common = (0..<6).map { "common/c\($0).bin" }
            // The store exists before the children start, as it would on a node.
            try await withStore(fx) { _ in }
            func args(_ who: String, _ round: Int) -> [String] {
                ["snapshot", "--root", fx.root, "--name", "multi", "--version", "\(who)\(round)", "--base-dir", fx.base, "-q",
                 "--ro", "common/frozen.bin", "--rw", "\(who)/own.bin"] + common.flatMap { ["--rw", $0] }
            }
            for round in 0..<3 {
                // New content each round, so both processes race to put the
                // same new content files (and read-only link) in place.
                let seed = UInt64(round) * 100
                for (i, path) in common.enumerated() {
                    try writeFile(fx.base + "/" + path, patternBytes(3 << 20, seed: seed + UInt64(i)))
                }
                // Read-only files are replaced, never rewritten in place.
                try writeFile(fx.base + "/frozen.new", patternBytes(4 << 20, seed: seed + 50), mode: 0o444)
                try posix("rename") { rename(fx.base + "/frozen.new", fx.base + "/common/frozen.bin") }
                try writeFile(fx.base + "/a/own.bin", patternBytes(2 << 20, seed: seed + 60))
                try writeFile(fx.base + "/b/own.bin", patternBytes(2 << 20, seed: seed + 61))

                let a = try Child(ctl, args("a", round), scratch: fx.dir)
                let b = try Child(ctl, args("b", round), scratch: fx.dir)
                let (ea, eb) = (await a.wait(), await b.wait())
                #expect(!ea.signaled && ea.status == 0, "round \(round): \(ea)")
                #expect(!eb.signaled && eb.status == 0, "round \(round): \(eb)")

                try await withStore(fx) { store in
                    #expect(try await store.list().count == 2 * (round + 1))
                    #expect(try await store.verify().problems == [])
                    #expect(try fx.contentFiles().count == 9 * (round + 1), "6 common + 1 read-only + 2 own per round, each once")
                    #expect(try fx.storageTemps() == [])
                    for who in ["a", "b"] {
                        let info = try await store.info(name: "multi", version: "\(who)\(round)")
                        #expect(info.fileCount == 8)
                        let out = fx.output("\(who)\(round)")
                        _ = try await store.restore(RestoreRequest(name: "multi", version: "\(who)\(round)", outputDir: out))
                        try expectRestored(info, in: out, store: fx)
                        for f in info.files {
                            #expect(try sameBytes(fx.base + "/" + f.relativePath, out + "/" + f.relativePath))
                        }
                    }
                }
            }
        }
    }
}
