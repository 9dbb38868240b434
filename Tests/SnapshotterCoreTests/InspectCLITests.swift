import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

@Suite("snapshotctl inspect", .serialized)
struct InspectCLITests {
    /// Runs snapshotctl with `env` added to its environment; returns its
    /// exit status and stderr.
    func snapshotctl(_ args: [String], env: [String: String]) throws -> (status: Int32, stderr: String, pid: Int32) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try snapshotctlPath())
        p.arguments = args
        var full = ProcessInfo.processInfo.environment
        for (k, v) in env { full[k] = v }
        p.environment = full
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self), p.processIdentifier)
    }

    @Test("inspect without --root opens no store: nothing in TMPDIR or /tmp, a planted symlink is not followed")
    func inspectLeavesNothing() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("inspect-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tmp = dir + "/tmp", target = dir + "/target", src = dir + "/src"
        for d in [tmp, target, src] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try Data("hello\n".utf8).write(to: URL(fileURLWithPath: src + "/f"))
        var o = StoreOptions()
        o.gc.intervalSeconds = 0
        o.registry = RegistrySettings(endpoint: "file://" + dir + "/layout")
        let store = try Snapshotter(root: dir + "/store", options: o)
        _ = try await store.snapshot(SnapshotRequest(name: "app", version: "1", baseDir: src, files: [FileRequest("f")]))

        // The old name was /tmp/snapshotctl-inspect-<pid>: plant symlinks
        // for the pids about to be handed out.
        let last = Int((try? String(contentsOfFile: "/proc/sys/kernel/ns_last_pid", encoding: .utf8))?
            .trimmingCharacters(in: "\n") ?? "") ?? 0
        var planted: [String] = []
        for pid in (last + 1)..<(last + 65) {
            let p = "/tmp/snapshotctl-inspect-\(pid)"
            if symlink(target, p) == 0 { planted.append(p) }
        }
        defer { for p in planted { unlink(p) } }

        let exit = try snapshotctl(["inspect", "--registry", "file://" + dir + "/layout", "--name", "app", "--version", "1"],
                                   env: ["TMPDIR": tmp, "SNAPSHOTTER_ROOT": ""])
        #expect(exit.status == 0, "\(exit)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: target).isEmpty)
        for p in planted { #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: p)) == target) }
        let old = "/tmp/snapshotctl-inspect-\(exit.pid)"
        let leftover = try Sys.lstatIfExists(old)
        #expect(planted.contains(old) || leftover == nil, "\(old) was left behind")
    }

    @Test("snapshotctl's error for a registry endpoint with a password does not show it")
    func errorHasNoPassword() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("inspect-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let exit = try snapshotctl(["inspect", "--registry", "http://bob:s3cr3t-pw@127.0.0.1:9", "--name", "app", "--version", "1"],
                                   env: ["TMPDIR": dir])
        #expect(exit.status == 10 + SnapshotterError.Code.registry.rawValue, "\(exit)")
        #expect(exit.stderr.contains("127.0.0.1:9") && !exit.stderr.contains("s3cr3t-pw"), "\(exit.stderr)")
    }
}
