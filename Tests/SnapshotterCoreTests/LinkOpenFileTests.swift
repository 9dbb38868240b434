import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SnapshotterSystem

/// A read-only source is linked into the store by its open descriptor
/// (AT_EMPTY_PATH) where the process may, else through /proc/self/fd: the
/// inode that was read either way, never what its path names now.
@Suite("Linking an open file")
struct LinkOpenFileTests {
    final class Calls: @unchecked Sendable {
        var descriptor = 0
        var proc = 0
    }

    @Test("the descriptor way is used until it is refused where /proc links; then /proc at once")
    func learnsRefusal() {
        let way = LinkWay()
        let calls = Calls()
        #expect(way.link(descriptor: { calls.descriptor += 1; return 0 }, proc: { calls.proc += 1; return 0 }) == 0)
        #expect(calls.descriptor == 1 && calls.proc == 0)
        // Another file system, or a file with no name left: nothing learnt.
        #expect(way.link(descriptor: { EXDEV }, proc: { calls.proc += 1; return 0 }) == EXDEV)
        #expect(calls.proc == 0)
        #expect(way.link(descriptor: { ENOENT }, proc: { ENOENT }) == ENOENT)
        #expect(way.usesDescriptor)
        // Refused, and /proc links: the process may not link by descriptor.
        #expect(way.link(descriptor: { ENOENT }, proc: { calls.proc += 1; return 0 }) == 0)
        #expect(!way.usesDescriptor)
        #expect(way.link(descriptor: { calls.descriptor += 1; return 0 }, proc: { calls.proc += 1; return EEXIST }) == EEXIST)
        #expect(calls.descriptor == 1 && calls.proc == 2)
    }

    @Test("both ways link the open inode, not the file its path names now",
          arguments: [Sys.LinkOpenFileVia.descriptor, .proc])
    func linksTheOpenInode(_ via: Sys.LinkOpenFileVia) async throws {
        try await withTempDir { dir in
            try writeFile(dir + "/src", "read")
            let fd = try posix("open") { open(dir + "/src", O_RDONLY | O_CLOEXEC) }
            defer { close(fd) }
            let read = try lstatOf(dir + "/src")
            // The path now names another file (the one read lives on as "moved").
            try posix("rename") { rename(dir + "/src", dir + "/moved") }
            try writeFile(dir + "/src", "swapped in")
            let dirFD = try posix("open dir") { open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            defer { close(dirFD) }
            let e = Sys.linkErrno(fd, at: dirFD, "linked", via: via)
            // Without the privilege the descriptor way is refused: /proc is taken then.
            if via == .descriptor && e == ENOENT { return }
            #expect(e == 0)
            #expect(try lstatOf(dir + "/linked").st_ino == read.st_ino)
            #expect(Sys.linkErrno(fd, at: dirFD, "linked", via: via) == EEXIST)
        }
    }

    @Test("an open file with no name left cannot be linked: the caller copies it")
    func unlinkedIsUnavailable() async throws {
        try await withTempDir { dir in
            try writeFile(dir + "/src", "gone")
            let fd = try posix("open") { open(dir + "/src", O_RDONLY | O_CLOEXEC) }
            defer { close(fd) }
            try posix("unlink") { unlink(dir + "/src") }
            let dirFD = try posix("open dir") { open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            defer { close(dirFD) }
            let target = dir + "/linked"
            let result = try Sys.linkOpenFile(fd, at: dirFD, "linked", path: target, what: "src")
            #expect(result == .unavailable)
            #expect(access(dir + "/linked", F_OK) != 0)
        }
    }

    @Test("with /proc/self/fd hidden, a snapshot still links its read-only sources (not copies)",
          .enabled(if: geteuid() == 0 && access("/usr/bin/unshare", X_OK) == 0, "needs root and unshare"))
    func linksWithoutProc() async throws {
        try await withFixture { fx in
            let ctl = try snapshotctlPath()
            for i in 0..<3 { try writeFile(fx.base + "/f\(i)", patternBytes(100 + i, seed: UInt64(i)), mode: 0o444) }
            // A mount namespace of its own, with an empty tmpfs over the
            // shell's /proc/PID/fd, which the exec'd snapshotctl keeps.
            let script = "mount -t tmpfs none /proc/$$/fd && exec \"$0\" snapshot --quiet --root \"$1\" --name n/a --version v "
                + "--base-dir \"$2\" --ro f0 --ro f1 --ro f2"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
            p.arguments = ["--mount", "--propagation", "private", "/bin/sh", "-c", script, ctl, fx.root, fx.base]
            try p.run()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            let links = try fx.linkFiles()
            #expect(links.count == 3)
            let sources = Set(try (0..<3).map { try lstatOf(fx.base + "/f\($0)").st_ino })
            let linked = Set(try links.map { try lstatOf(fx.linkDir + "/" + $0).st_ino })
            #expect(linked == sources, "the store holds copies, not the sources' inodes")
        }
    }
}
