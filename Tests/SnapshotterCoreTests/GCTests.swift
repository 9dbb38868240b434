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

@Suite("Garbage collection")
struct GCTests {
    @Test("Least recently used snapshots go first, until usage is below the low watermark")
    func evictionOrder() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        for i in 0..<5 { try await fx.make(store, i) }
        try fx.age(store, [3, 1, 4, 0, 2]) // v3 oldest, then v1
        // 3 MB + 5 x ~1 MB = 80 %: above 75, stop at or below 65 -> two go.
        let r = try await store.gc(policy: gcPolicy(high: 75, low: 65))
        #expect(r.snapshotsEvicted == 2 && r.contentFilesRemoved == 2)
        #expect(r.bytesFreed >= 2_000_000)
        #expect(try await fx.versions(store) == ["v0", "v2", "v4"])
        #expect(try await store.verify().isConsistent)
    }

    @Test("Below the high watermark nothing is evicted, even above the low one")
    func highWatermarkStartsCollection() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        for i in 0..<5 { try await fx.make(store, i) }
        let r = try await store.gc(policy: gcPolicy(high: 85, low: 50))
        #expect(r.snapshotsEvicted == 0)
        #expect(try await fx.versions(store).count == 5)
    }

    @Test("Snapshots accessed within the minimum retention are never evicted")
    func retention() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        for i in 0..<4 { try await fx.make(store, i) }
        try fx.age(store, [0, 1])  // v0, v1 an hour old; v2, v3 fresh
        let r = try await store.gc(policy: gcPolicy(high: 10, low: 5, batch: 10, retention: 600))
        #expect(r.snapshotsEvicted == 2)
        #expect(try await fx.versions(store) == ["v2", "v3"])
    }

    @Test("Eviction goes in batches: usage is measured again after each batch")
    func batches() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        for i in 0..<6 { try await fx.make(store, i) }
        try fx.age(store, [0, 1, 2, 3, 4, 5])
        // 9 MB = 90 %; one eviction would reach 80 % (< 85), but a batch of
        // three goes at once.
        let r = try await store.gc(policy: gcPolicy(high: 85, low: 85, batch: 3))
        #expect(r.snapshotsEvicted == 3)
        #expect(try await fx.versions(store) == ["v3", "v4", "v5"])
    }

    @Test("The byte budget triggers eviction on an empty disk")
    func byteBudget() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open(other: 0)
        for i in 0..<5 { try await fx.make(store, i) }
        try fx.age(store, [0, 1, 2, 3, 4])
        var p = gcPolicy(high: 90, low: 60, batch: 1)
        p.maxStoreBytes = 3_100_000 // stop at <= 2.07 MB (3.1 MB * 60 / 90)
        let r = try await store.gc(policy: p)
        #expect(r.snapshotsEvicted == 3)
        #expect(try await fx.versions(store) == ["v3", "v4"])
    }

    @Test("Content shared with a surviving snapshot stays")
    func sharedContentStays() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        try await fx.make(store, 0)
        _ = try await store.snapshot(SnapshotRequest(name: "sb", version: "copy", baseDir: fx.dir + "/src", files: [FileRequest("f0")]))
        try fx.age(store, [0])
        let r = try await store.gc(policy: gcPolicy(high: 1, low: 0, batch: 1, retention: 600))
        #expect(r.snapshotsEvicted == 1 && r.contentFilesRemoved == 0)
        _ = try await store.restore(RestoreRequest(name: "sb", version: "copy", outputDir: fx.dir + "/out"))
        #expect(FileManager.default.contentsEqual(atPath: fx.dir + "/src/f0", andPath: fx.dir + "/out/f0"))
    }

    @Test("A restore running while the collector wants its snapshot finishes intact")
    func restoreDuringCollection() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        try await fx.make(store, 0, size: 4_000_000)
        for i in 1..<4 { try await fx.make(store, i) }
        try fx.age(store, [0, 1, 2, 3])
        // The collection starts once the restore is exporting, and the
        // restore is held there until the collection is over.
        let (started, signal) = AsyncStream<Void>.makeStream()
        let collected = Latch()
        async let restored = store.restore(RestoreRequest(name: "sb", version: "v0", outputDir: fx.dir + "/out"), progress: { e in
            if e.phase == .exporting && !collected.isSet {
                signal.yield()
                collected.wait()
            }
            return true
        })
        for await _ in started { break }
        let r: GCReport
        do {
            r = try await store.gc(policy: gcPolicy(high: 1, low: 0, batch: 10))
            collected.set()
        } catch {
            collected.set()
            _ = try? await restored
            throw error
        }
        #expect(try await fx.versions(store) == ["v0"])
        _ = try await restored
        #expect(FileManager.default.contentsEqual(atPath: fx.dir + "/src/f0", andPath: fx.dir + "/out/f0"))
        #expect(r.snapshotsEvicted == 3)
        #expect(try await store.verify().isConsistent)
    }

    @Test("The orphan sweep removes exactly the old orphans")
    func orphanSweep() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        try await fx.make(store, 0, readOnly: true)
        try await fx.make(store, 1)
        let contentDir = fx.root + "/storage/content/xxh3"
        let linkDir = fx.root + "/storage/snapshot/xxh3"
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: contentDir))
        let linksBefore = Set(try FileManager.default.contentsOfDirectory(atPath: linkDir))
        func plant(_ path: String, old: Bool) throws {
            try Data("orphan".utf8).write(to: URL(fileURLWithPath: path))
            if old {
                let t = Date(timeIntervalSinceNow: -7200)
                try FileManager.default.setAttributes([.modificationDate: t], ofItemAtPath: path)
            }
        }
        try plant(contentDir + "/abc123", old: true)             // content no record names
        try plant(contentDir + "/.snapshotter-tmp-1-2-x", old: true) // stale temp
        try plant(linkDir + "/def456", old: true)                 // link without record
        try plant(contentDir + "/fedcba", old: false)             // young: may be in flight
        try plant(contentDir + "/.snapshotter-tmp-9-9-y", old: false)
        try plant(contentDir + "/not-a-digest", old: true)        // not ours: left alone
        // ctime cannot be set back; the sweep looks at both, so give it a
        // grace of zero and rely on the young files being younger than now.
        let removed = try store.sweepOrphans(graceSeconds: 3600)
        let ctimeBlocked = removed == 0
        if ctimeBlocked {
            // Files just written have a fresh ctime: sweep with a short grace
            // after making the young ones younger than the cutoff.
            try await Task.sleep(nanoseconds: 1_100_000_000)
            try plant(contentDir + "/fedcba", old: false)
            try plant(contentDir + "/.snapshotter-tmp-9-9-y", old: false)
            let n = try store.sweepOrphans(graceSeconds: 0.5)
            #expect(n == 3)
        } else {
            #expect(removed == 3)
        }
        let after = Set(try FileManager.default.contentsOfDirectory(atPath: contentDir))
        #expect(after == before.union(["fedcba", ".snapshotter-tmp-9-9-y", "not-a-digest"]))
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: linkDir)) == linksBefore)
        #expect(try await store.verify().problems.allSatisfy { $0.kind == .orphanContent })
    }
}

@Suite("Garbage collection across processes")
struct GCProcessTests {
    /// Many small snapshots, each with content of its own and some shared.
    func populate(_ fx: GCFixture, _ store: Snapshotter, count: Int) async throws {
        try Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }).write(to: URL(fileURLWithPath: fx.dir + "/src/shared"))
        for i in 0..<count {
            try Data((0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* (i + 3) &+ i) }).write(to: URL(fileURLWithPath: "\(fx.dir)/src/own\(i)"))
            _ = try await store.snapshot(SnapshotRequest(name: "sb", version: "v\(i)", baseDir: fx.dir + "/src",
                                                         files: [FileRequest("shared", readOnly: i % 2 == 0), FileRequest("own\(i)")]))
        }
    }

    @Test("One process collecting and another restoring lose nothing")
    func collectorAndRestorer() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        try await populate(fx, store, count: 12)
        let ctl = try snapshotctlPath()
        // The child evicts everything it may; this process keeps restoring
        // the snapshots that remain. A restore either finds its snapshot
        // (and then gets every byte) or finds it gone, never half of it.
        let child = try Child(ctl, ["gc", "--root", fx.root, "--high-watermark", "0", "--low-watermark", "0",
                                    "--min-retention", "0", "--batch-size", "1", "-q"], scratch: fx.dir)
        var restored = 0, gone = 0
        for round in 0..<24 {
            let v = round % 12
            let out = "\(fx.dir)/out-\(round)"
            do {
                _ = try await store.restore(RestoreRequest(name: "sb", version: "v\(v)", outputDir: out))
                #expect(FileManager.default.contentsEqual(atPath: "\(fx.dir)/src/own\(v)", andPath: "\(out)/own\(v)"))
                #expect(FileManager.default.contentsEqual(atPath: "\(fx.dir)/src/shared", andPath: "\(out)/shared"))
                restored += 1
            } catch let e as SnapshotterError where e.code == .notFound {
                gone += 1
                #expect(!FileManager.default.fileExists(atPath: "\(out)/own\(v)"))
            }
        }
        let exit = await child.wait()
        #expect(exit.status == 0, "\(exit)")
        #expect(restored + gone == 24)
        let report = try await store.verify()
        #expect(report.isConsistent, "\(report.problems)")
    }

    @Test("A collection killed with SIGKILL at random points leaves a consistent store")
    func killedCollection() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        var rng = SplitMix64(seed: UInt64(ProcessInfo.processInfo.environment["SNAPSHOTTER_CRASH_SEED"].flatMap { UInt64($0) } ?? UInt64(Sys.nowNanos())))
        let store = try fx.open()
        try await populate(fx, store, count: 20)
        let ctl = try snapshotctlPath()
        for round in 0..<6 {
            let child = try Child(ctl, ["gc", "--root", fx.root, "--high-watermark", "0", "--low-watermark", "0",
                                        "--min-retention", "0", "--batch-size", "2", "-q"], scratch: fx.dir)
            try await Task.sleep(nanoseconds: UInt64.random(in: 5_000_000...120_000_000, using: &rng))
            child.kill()
            _ = await child.wait()
            // verify first: it also settles a commit the killed writer left
            // half-published, so the listing below is what is there.
            let report = try await store.verify()
            #expect(report.isConsistent, "round \(round): \(report.problems)")
            // Every snapshot still listed restores exactly.
            let listed = try await store.list()
            for s in listed {
                let out = "\(fx.dir)/out-\(round)-\(s.version)"
                do {
                    _ = try await store.restore(RestoreRequest(name: s.name, version: s.version, outputDir: out))
                } catch {
                    let again = try await store.list().map(\.version)
                    Issue.record("round \(round): restore of listed \(s.version) failed: \(error); listed before \(listed.map(\.version)), now \(again)")
                    throw error
                }
                let i = Int(s.version.dropFirst())!
                #expect(FileManager.default.contentsEqual(atPath: "\(fx.dir)/src/own\(i)", andPath: "\(out)/own\(i)"))
            }
        }
    }
}
