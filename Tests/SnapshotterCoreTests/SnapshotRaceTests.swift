import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CShim
import Synchronization
import Testing
@testable import SnapshotterCore

/// Swaps two names in a directory (renameat2 RENAME_EXCHANGE) over and
/// over on its own thread until stopped.
final class RenameExchanger: Sendable {
    private let dirfd: Int32
    private let a: String
    private let b: String
    private let stopping = Atomic<Bool>(false)
    private let count = Atomic<Int>(0)
    private let failure = Atomic<Int32>(0)
    private let started = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    init(in dir: String, swapping a: String, with b: String) throws {
        dirfd = try posix("open \(dir)") { open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        self.a = a
        self.b = b
    }

    /// Starts the thread and returns once it has swapped once.
    func start() {
        Thread.detachNewThread { self.run() }
        started.wait()
    }

    private func run() {
        defer { finished.signal() }
        var first = true
        while !stopping.load(ordering: .relaxed) {
            if cshim_rename_exchange(dirfd, a, dirfd, b) != 0 {
                failure.store(errno, ordering: .relaxed)
                if first { started.signal() }
                return
            }
            count.add(1, ordering: .relaxed)
            if first { started.signal(); first = false }
        }
    }

    /// Stops the thread and waits for it; returns how many swaps it made
    /// and the errno that stopped it early, if any.
    func stop() -> (swaps: Int, errno: Int32) {
        stopping.store(true, ordering: .relaxed)
        finished.wait()
        close(dirfd)
        return (count.load(ordering: .relaxed), failure.load(ordering: .relaxed))
    }
}

/// Someone who can write to the base directory changes it while a snapshot
/// reads it (issue 12): no byte from outside the base ever gets in.
@Suite("Snapshot races")
struct SnapshotRaceTests {
    @Test("a directory swapped with a symlink to an outside directory during snapshot never gets an outside byte stored")
    func directorySwappedWithSymlink() async throws {
        try await withFixture { fx in
            let n = 48
            let outside = fx.dir + "/outside"
            var secrets = Set<Digest>()
            for i in 0..<n {
                try writeFile(fx.base + "/sub/f\(i)", "inside \(i)\n")
                try writeFile(outside + "/f\(i)", "SECRET \(i)\n")
                secrets.insert(try spf1Digest(outside + "/f\(i)"))
            }
            _ = try posix("symlink") { symlink(outside, fx.base + "/swap") }
            let racer = try RenameExchanger(in: fx.base, swapping: "sub", with: "swap")
            racer.start()
            var succeeded = 0, refused = 0
            do {
                try await withStore(fx) { store in
                    for round in 0..<16 {
                        let readOnly = round % 2 == 1
                        let files = (0..<n).map { FileRequest("sub/f\($0)", readOnly: readOnly) }
                        do {
                            let r = try await store.snapshot(SnapshotRequest(name: "race", version: "v\(round)", baseDir: fx.base, files: files))
                            let leaked = r.info.files.filter { secrets.contains($0.digest) }.map(\.relativePath)
                            #expect(leaked.isEmpty, "round \(round): outside content stored for \(leaked)")
                            succeeded += 1
                        } catch let e as SnapshotterError {
                            #expect(e.code == .invalidArgument, "round \(round): \(e.code): \(e.message)")
                            #expect(e.message.contains("sub/f"), "the error names the file: \(e.message)")
                            refused += 1
                        }
                    }
                }
            } catch {
                _ = racer.stop()
                throw error
            }
            let (swaps, failed) = racer.stop()
            #expect(failed == 0, "renameat2(RENAME_EXCHANGE) failed: errno \(failed)")
            #expect(swaps > 0)
            #expect(succeeded + refused == 16)
            let stored = Set(try fx.contentFiles() + fx.linkFiles())
            for d in secrets { #expect(!stored.contains(d.hex), "the outside content \(d) is in the store") }
            for i in 0..<n { #expect(try statOf(outside + "/f\(i)").st_nlink == 1, "outside f\(i) was linked into the store") }
        }
    }
}
