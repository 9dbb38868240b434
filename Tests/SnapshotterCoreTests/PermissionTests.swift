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

/// Runs a command as `user` (runuser); returns its exit status.
private func runAs(_ user: String, _ args: [String]) throws -> Int32 {
    try run("/usr/sbin/runuser", ["-u", user, "--"] + args)
}

@discardableResult
private func run(_ exe: String, _ args: [String]) throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    return p.terminationStatus
}

@Suite("Store permissions", .serialized, .enabled(if: geteuid() == 0 && access("/usr/sbin/runuser", X_OK) == 0, "needs root and runuser"))
struct PermissionTests {
    /// A store under a 0755 root the test made (so only the store's own
    /// layout can keep others out), with one 0600 file snapshotted.
    struct Fixture {
        let dir: String
        let root: String
        let store: Snapshotter
        let content: String

        init(group: UInt32? = nil) async throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("perm-\(UUID().uuidString)").path
            root = dir + "/store"
            try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            chmod(dir, 0o755)
            chmod(root, 0o755)
            let secret = dir + "/src/secret"
            try Data("top secret\n".utf8).write(to: URL(fileURLWithPath: secret))
            chmod(secret, 0o600)
            var o = StoreOptions()
            o.gc.intervalSeconds = 0
            o.storeGroup = group
            store = try Snapshotter(root: root, options: o)
            let r = try await store.snapshot(SnapshotRequest(name: "p", version: "1", baseDir: dir + "/src", files: [FileRequest("secret")]))
            content = store.store.contentPath(r.info.files[0].digest)
        }

        func cleanup() { try? FileManager.default.removeItem(atPath: dir) }
    }

    @Test("Content of a 0600 source, the metadata and the listing of storage/ are closed to other users")
    func closedToOthers() async throws {
        let fx = try await Fixture()
        defer { fx.cleanup() }
        #expect(try run("/bin/cat", [fx.content]) == 0)
        #expect(try runAs("nobody", ["/bin/cat", fx.content]) != 0)
        #expect(try runAs("nobody", ["/bin/cat", fx.root + "/metadata/data.mdb"]) != 0)
        #expect(try runAs("nobody", ["/bin/ls", fx.root + "/storage"]) != 0)
        let st = try Sys.lstatIfExists(fx.content)
        #expect(st.map { $0.st_mode & 0o777 } == 0o400)
        #expect(try Sys.lstatIfExists(fx.root + "/metadata/data.mdb").map { $0.st_mode & 0o777 } == 0o600)
        #expect(try Sys.lstatIfExists(fx.root + "/storage").map { $0.st_mode & 0o777 } == 0o700)
        // The user's root was there already: left as it was.
        #expect(try Sys.lstatIfExists(fx.root).map { $0.st_mode & 0o777 } == 0o755)
    }

    @Test("snapshotctl --store-group takes a group name or number; an unknown name is refused")
    func cliStoreGroup() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("perm-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("x\n".utf8).write(to: URL(fileURLWithPath: dir + "/src/f"))
        let ctl = try snapshotctlPath()
        let args = ["snapshot", "--quiet", "--name", "a", "--version", "1", "--base-dir", dir + "/src", "--rw", "f"]
        #expect(try run(ctl, args + ["--root", dir + "/named", "--store-group", "root"]) == 0)
        #expect(try run(ctl, args + ["--root", dir + "/numbered", "--store-group", "0"]) == 0)
        for root in [dir + "/named", dir + "/numbered"] {
            let st = try Sys.lstatIfExists(root + "/storage")
            #expect(st.map { $0.st_mode & 0o777 } == 0o750 && st?.st_gid == 0, "\(root)")
        }
        #expect(try run(ctl, args + ["--root", dir + "/bad", "--store-group", "no-such-group-here"]) != 0)
    }

    @Test("With a store group, a member of it can read; others still cannot")
    func groupMayRead() async throws {
        let suffix = String(UInt32.random(in: 0..<1_000_000))
        let group = "snaptg\(suffix)", user = "snaptu\(suffix)"
        guard try run("/usr/sbin/groupadd", [group]) == 0 else { Issue.record("groupadd failed"); return }
        defer { _ = try? run("/usr/sbin/groupdel", [group]) }
        guard try run("/usr/sbin/useradd", ["-M", "-N", "-g", group, user]) == 0 else { Issue.record("useradd failed"); return }
        defer { _ = try? run("/usr/sbin/userdel", [user]) }
        guard let g = getgrnam(group) else { Issue.record("no gid for \(group)"); return }
        let fx = try await Fixture(group: g.pointee.gr_gid)
        defer { fx.cleanup() }
        #expect(try runAs(user, ["/bin/cat", fx.content]) == 0)
        #expect(try runAs(user, ["/bin/cat", fx.root + "/metadata/data.mdb"]) == 0)
        #expect(try runAs(user, ["/bin/ls", fx.root + "/storage/content/xxh3"]) == 0)
        #expect(try runAs("nobody", ["/bin/cat", fx.content]) != 0)
        #expect(try Sys.lstatIfExists(fx.content).map { ($0.st_mode & 0o777, $0.st_gid) } .map { $0 == (0o440, g.pointee.gr_gid) } == true)
    }
}
