import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// One limit on the config's size (StoreOptions.maxConfigBytes) for publish
/// and fetch: what one store publishes, a store with the same setting can
/// restore; a config over the limit is refused before anything is pushed.
@Suite("Config size limit")
struct ConfigLimitTests {
    func open(_ m: TwoMachines, _ name: String, maxConfigBytes: Int? = nil, content: Bool = true) throws -> Snapshotter {
        var o = StoreOptions()
        o.gc.intervalSeconds = 0
        o.registry = m.registry
        o.content = content ? m.content : nil
        if let maxConfigBytes { o.maxConfigBytes = maxConfigBytes }
        return try Snapshotter(root: m.fx.dir + "/" + name, options: o)
    }

    /// `count` one-byte files (two distinct contents) with realistic paths.
    func makeFiles(_ dir: String, count: Int) throws -> [FileRequest] {
        var requests: [FileRequest] = []
        requests.reserveCapacity(count)
        for i in 0..<count {
            let rel = "shard-\(i / 1000)/checkpoint-part-\(i)-of-\(count).safetensors"
            if i % 1000 == 0 { try makeDirs(dir + "/shard-\(i / 1000)") }
            try writeFile(dir + "/" + rel, i % 2 == 0 ? "a" : "b")
            requests.append(FileRequest(rel))
        }
        return requests
    }

    @Test("A config over the limit is refused before anything is pushed; the error names the size and the limit")
    func publishOverLimit() async throws {
        let m = try TwoMachines()
        defer { m.fx.cleanup() }
        let files = try makeFiles(m.fx.src + "/many", count: 600)
        let limit = 64 << 10
        let a = try open(m, "a", maxConfigBytes: limit, content: false)
        let e = await expectError(.invalidArgument) {
            try await a.snapshot(SnapshotRequest(name: "big", version: "v1", baseDir: m.fx.src + "/many", files: files))
        }
        #expect(e?.message.contains("\(limit)") == true, "\(e?.message ?? "")")
        #expect(e?.message.contains("max config bytes") == true)
        // Nothing reached the registry, nothing was recorded.
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: m.fx.dir + "/registry")) ?? []).isEmpty)
        #expect(try await a.list().isEmpty)
        await a.close()
        // Out of range settings are refused when the store opens.
        #expect(throws: SnapshotterError.self) { try self.open(m, "c", maxConfigBytes: 1000) }
    }

    @Test("A 20,000-file config (over the old 4 MiB cap) is published and restored; a store with a lower limit refuses it")
    func twentyThousandFiles() async throws {
        let m = try TwoMachines()
        defer { m.fx.cleanup() }
        let files = try makeFiles(m.fx.src + "/many", count: 20_000)
        let a = try open(m, "a")
        let snap = try await a.snapshot(SnapshotRequest(name: "many", version: "v1", baseDir: m.fx.src + "/many", files: files))
        await a.close()
        #expect(snap.info.config.count > 4 << 20, "config is \(snap.info.config.count) bytes")
        let b = try open(m, "b")
        let out = m.fx.dir + "/out"
        let r = try await b.restore(RestoreRequest(name: "many", version: "v1", outputDir: out))
        #expect(r.filesLinked + r.filesCopied + r.filesDecoded == 20_000)
        for i in [0, 1, 9_999, 19_999] {
            #expect(try readText(out + "/" + files[i].relativePath) == (i % 2 == 0 ? "a" : "b"))
        }
        #expect(try await b.info(name: "many", version: "v1").config == snap.info.config)
        await b.close()
        let c = try open(m, "c", maxConfigBytes: 1 << 20)
        let e = await expectError(.registry) {
            try await c.restore(RestoreRequest(name: "many", version: "v1", outputDir: m.fx.dir + "/out-c"))
        }
        #expect(e?.message.contains("max config bytes") == true, "\(e?.message ?? "")")
        await c.close()
    }
}
