import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// A remote that lost objects: a later snapshot naming the same content
/// puts it back before publishing, so a restore elsewhere works. What the
/// store uploaded before counts for nothing.
@Suite("Remote presence at publish")
struct RemotePresenceTests {
    /// Source files no other test uses (the S3 bucket is shared).
    func uniqueSources(_ m: TwoMachines) throws {
        let tag = UUID().uuidString
        for f in ["ckpt/mem", "ckpt/state", "meta.json"] {
            try Data("\(f) \(tag)\n".utf8).write(to: URL(fileURLWithPath: m.fx.src + "/" + f))
        }
    }

    func digests(_ info: SnapshotInfo) -> Set<Digest> { Set(info.files.map(\.digest)) }

    @Test("Directory remote: objects deleted behind our back are uploaded again by the next snapshot")
    func directoryRemoteLostObjects() async throws {
        let m = try TwoMachines()
        defer { m.fx.cleanup() }
        let a = try m.open("a")
        let first = try await a.snapshot(SnapshotRequest(name: "sb", version: "v1", baseDir: m.fx.src, files: m.fx.files))
        let remote = m.fx.dir + "/content/xxh3"
        for d in digests(first.info) { try FileManager.default.removeItem(atPath: remote + "/" + d.hex) }
        let second = try await a.snapshot(SnapshotRequest(name: "sb", version: "v2", baseDir: m.fx.src, files: m.fx.files))
        #expect(digests(second.info) == digests(first.info))
        for d in digests(second.info) { #expect(exists(remote + "/" + d.hex), "\(d) is not in the remote") }
        let b = try m.open("b")
        let out = m.fx.dir + "/out"
        _ = try await b.restore(RestoreRequest(name: "sb", version: "v2", outputDir: out))
        #expect(m.same(out))
    }

    @Test("S3: objects deleted behind our back are uploaded again by the next snapshot; a restore elsewhere works",
          .enabled(if: RegistryServices.env?["S3_ENDPOINT"] != nil, "content services not running"))
    func s3RemoteLostObjects() async throws {
        var m = try TwoMachines(registry: RegistrySettings(endpoint: try RegistryServices.value("REGISTRY_PLAIN"), namespace: "lost"))
        m.content = try S3TransportTests().s3()
        defer { m.fx.cleanup() }
        try uniqueSources(m)
        let a = try m.open("a")
        let first = try await a.snapshot(SnapshotRequest(name: "sb", version: "v1-\(UUID().uuidString)", baseDir: m.fx.src, files: m.fx.files))
        let endpoint = try RegistryServices.value("S3_ENDPOINT")
        let bucket = try RegistryServices.value("S3_BUCKET")
        // curl 7.88 signs S3 requests only with the payload hash header set.
        let auth = ["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "--aws-sigv4", "aws:amz:\(try RegistryServices.value("S3_REGION")):s3",
                    "--user", "\(try RegistryServices.value("S3_ACCESS_KEY_ID")):\(try RegistryServices.value("S3_SECRET_ACCESS_KEY"))"]
        func status(_ method: String, _ d: Digest) throws -> String {
            let verb = method == "HEAD" ? ["-I"] : ["-X", method]
            let out = try RegistryServices.curl(auth + verb + ["-o", "/dev/null", "-w", "%{http_code}", "\(endpoint)/\(bucket)/xxh3/\(d.hex)"])
            return String(decoding: out, as: UTF8.self)
        }
        for d in digests(first.info) {
            #expect(try status("DELETE", d) == "204")
            #expect(try status("HEAD", d) == "404")
        }
        let version = "v2-\(UUID().uuidString)"
        let second = try await a.snapshot(SnapshotRequest(name: "sb", version: version, baseDir: m.fx.src, files: m.fx.files))
        for d in digests(second.info) { #expect(try status("HEAD", d) == "200", "\(d) is not in the bucket") }
        let b = try m.open("b")
        let out = m.fx.dir + "/out"
        _ = try await b.restore(RestoreRequest(name: "sb", version: version, outputDir: out))
        #expect(m.same(out))
    }
}
