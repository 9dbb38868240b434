import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CShim
import Synchronization
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

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

    private let running = Atomic<Bool>(false)

    /// Starts the thread (once) and returns when it has swapped once.
    func start() {
        guard running.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged else { return }
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
        if running.load(ordering: .sequentiallyConsistent) { finished.wait() }
        close(dirfd)
        return (count.load(ordering: .relaxed), failure.load(ordering: .relaxed))
    }
}

/// Someone who can write to the base directory changes it while a snapshot
/// reads it (issue 12): no byte from outside the base ever gets in.
@Suite("Snapshot races")
struct SnapshotRaceTests {
    static let n = 48

    /// `base/sub/f<i>` inside, `outside/f<i>` with secret content and
    /// `base/swap`, a symlink to `outside`; returns the secrets' digests.
    static func setUp(_ fx: Fixture) throws -> Set<Digest> {
        let outside = fx.dir + "/outside"
        var secrets = Set<Digest>()
        for i in 0..<n {
            try writeFile(fx.base + "/sub/f\(i)", "inside \(i)\n")
            try writeFile(outside + "/f\(i)", "SECRET \(i)\n")
            secrets.insert(try spf1Digest(outside + "/f\(i)"))
        }
        _ = try posix("symlink") { symlink(outside, fx.base + "/swap") }
        return secrets
    }

    static func files(readOnly: Bool) -> [FileRequest] {
        (0..<n).map { FileRequest("sub/f\($0)", readOnly: readOnly) }
    }

    /// Runs one snapshot: a success must hold no secret, a failure must be
    /// an invalid-argument error naming a file. Returns whether it succeeded.
    static func snapshotChecked(_ store: Snapshotter, _ fx: Fixture, version: String, readOnly: Bool,
                                secrets: Set<Digest>) async -> Bool {
        do {
            let r = try await store.snapshot(SnapshotRequest(name: "race", version: version, baseDir: fx.base,
                                                             files: files(readOnly: readOnly)))
            let leaked = r.info.files.filter { secrets.contains($0.digest) }.map(\.relativePath)
            #expect(leaked.isEmpty, "\(version): outside content stored for \(leaked)")
            return true
        } catch let e as SnapshotterError {
            #expect(e.code == .invalidArgument, "\(version): \(e.code): \(e.message)")
            #expect(e.message.contains("sub/f"), "the error names the file: \(e.message)")
            return false
        } catch {
            Issue.record("\(version): \(error)")
            return false
        }
    }

    /// Nothing of the outside directory is in the store, as content or link.
    static func expectNothingOutsideStored(_ fx: Fixture, _ secrets: Set<Digest>,
                                           sourceLocation: SourceLocation = #_sourceLocation) throws {
        let stored = Set(try fx.contentFiles() + fx.linkFiles())
        for d in secrets { #expect(!stored.contains(d.hex), "the outside content \(d) is in the store", sourceLocation: sourceLocation) }
        for i in 0..<n {
            #expect(try statOf(fx.dir + "/outside/f\(i)").st_nlink == 1, "outside f\(i) was linked into the store",
                    sourceLocation: sourceLocation)
        }
    }

    @Test("a directory swapped for a symlink to outside after prepare is refused when its files are opened", arguments: [false, true])
    func directorySwappedAfterPrepare(_ readOnly: Bool) async throws {
        try await withFixture { fx in
            let secrets = try Self.setUp(fx)
            let base = fx.base
            try await withStore(fx) { store in
                SnapshotHooks.install(root: store.root) { point in
                    guard case .prepared = point else { return }
                    _ = cshim_rename_exchange(AT_FDCWD, base + "/sub", AT_FDCWD, base + "/swap")
                }
                defer { SnapshotHooks.remove(root: store.root) }
                let ok = await Self.snapshotChecked(store, fx, version: "v1", readOnly: readOnly, secrets: secrets)
                #expect(!ok, "every file is behind the symlink now")
            }
            #expect((try lstatOf(fx.base + "/sub").st_mode & S_IFMT) == S_IFLNK, "the hook swapped")
            try Self.expectNothingOutsideStored(fx, secrets)
        }
    }

    @Test("a directory swapped with a symlink to outside over and over during snapshot never gets an outside byte stored",
          arguments: [false, true])
    func directorySwappedWithSymlink(_ fromPrepared: Bool) async throws {
        try await withFixture { fx in
            let secrets = try Self.setUp(fx)
            var swaps = 0
            try await withStore(fx) { store in
                for round in 0..<16 {
                    // From the start (prepare sees the race) or once prepare
                    // is done (only the opens for reading do).
                    let racer = try RenameExchanger(in: fx.base, swapping: "sub", with: "swap")
                    if fromPrepared {
                        SnapshotHooks.install(root: store.root) { point in
                            if case .prepared = point { racer.start() }
                        }
                    } else {
                        racer.start()
                    }
                    _ = await Self.snapshotChecked(store, fx, version: "v\(round)", readOnly: round % 2 == 1, secrets: secrets)
                    SnapshotHooks.remove(root: store.root)
                    let (made, failed) = racer.stop()
                    #expect(failed == 0, "renameat2(RENAME_EXCHANGE) failed: errno \(failed)")
                    swaps += made
                    // Each round starts with the directory in place.
                    if (try lstatOf(fx.base + "/sub").st_mode & S_IFMT) == S_IFLNK {
                        _ = try posix("rename exchange") { cshim_rename_exchange(AT_FDCWD, fx.base + "/sub", AT_FDCWD, fx.base + "/swap") }
                    }
                }
            }
            #expect(swaps > 0)
            try Self.expectNothingOutsideStored(fx, secrets)
        }
    }
}
