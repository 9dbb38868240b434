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

/// A snapshot stores regular files only: whatever else a listed path is
/// (or becomes while the snapshot runs) fails fast with an error naming it,
/// and nothing is recorded or linked (issue 12, items 5 and 6).
@Suite("Snapshot file kinds")
struct SnapshotFileKindTests {
    /// Makes `path` a listening-free AF_UNIX socket (bound, then closed).
    static func makeSocket(_ path: String) throws {
        let fd = try posix("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0) }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw TestError.posix("socket path too long", ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            for (i, b) in bytes.enumerated() { buf[i] = b }
        }
        _ = try posix("bind \(path)") {
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
    }

    /// Each kind of non-regular file, made at `base + "/" + name`; the
    /// device only as root (it is /dev/null's numbers).
    static let kinds = ["fifo", "socket", "filelink", "dirlink", "dangling", "dir", "device"]

    static func make(_ kind: String, in base: String) throws -> Bool {
        let path = base + "/" + kind
        switch kind {
        case "fifo": _ = try posix("mkfifo") { mkfifo(path, 0o644) }
        case "socket": try makeSocket(path)
        case "filelink": _ = try posix("symlink") { symlink("ok.txt", path) }
        case "dirlink": _ = try posix("symlink") { symlink("sub", path) }
        case "dangling": _ = try posix("symlink") { symlink("nowhere", path) }
        case "dir": try makeDirs(path)
        case "device":
            guard geteuid() == 0 else { return false }
            _ = try posix("mknod") { mknod(path, S_IFCHR | 0o644, dev_t((1 << 8) | 3)) }
        default: Issue.record("unknown kind \(kind)")
        }
        return true
    }

    @Test("anything but a regular file is refused, read-only or not, with an error naming it", arguments: kinds)
    func nonRegularRefused(_ kind: String) async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/ok.txt", "ok\n")
            try writeFile(fx.base + "/sub/x", "x\n")
            guard try Self.make(kind, in: fx.base) else { return }
            try await withStore(fx) { store in
                for readOnly in [false, true] {
                    let e = await expectError(.invalidArgument, "\(kind) readOnly=\(readOnly)") {
                        try await store.snapshot(SnapshotRequest(name: "k", version: readOnly ? "ro" : "rw", baseDir: fx.base,
                                                                 files: [FileRequest("ok.txt", readOnly: readOnly),
                                                                         FileRequest(kind, readOnly: readOnly)]))
                    }
                    #expect(e?.message.contains(kind) == true, "the error names the file: \(e?.message ?? "")")
                }
                try await PathSafetyTests.expectNothingRecorded(store, fx)
            }
            #expect(try statOf(fx.base + "/ok.txt").st_nlink == 1)
        }
    }

    @Test("a file replaced by a FIFO after it was looked at fails fast instead of waiting for a writer", arguments: [false, true])
    func fileBecomesFIFO(_ readOnly: Bool) async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/ok.txt", "ok\n")
            try writeFile(fx.base + "/pipe", "a file for now\n")
            try await withStore(fx) { store in
                let base = fx.base
                SnapshotHooks.install(root: store.root) { point in
                    guard case .prepared = point else { return }
                    unlink(base + "/pipe")
                    mkfifo(base + "/pipe", 0o644)
                }
                defer { SnapshotHooks.remove(root: store.root) }
                let e = await expectError(.invalidArgument) {
                    try await store.snapshot(SnapshotRequest(name: "k", version: "v1", baseDir: fx.base,
                                                             files: [FileRequest("ok.txt", readOnly: readOnly),
                                                                     FileRequest("pipe", readOnly: readOnly)]))
                }
                #expect(e?.message.contains("pipe") == true && e?.message.contains("FIFO") == true, "\(e?.message ?? "")")
                let listed = try await store.list()
                #expect(listed.isEmpty)
            }
            #expect((try lstatOf(fx.base + "/pipe").st_mode & S_IFMT) == S_IFIFO, "the hook ran")
        }
    }
}
