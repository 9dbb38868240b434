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

/// LMDB tells processes apart by an fcntl lock on lock.mdb that each one
/// holds while its environment is open; a process that gets it exclusively
/// initializes the lock file again. A process drops all its fcntl locks on
/// a file when it closes any descriptor of it, so the store must never
/// open and close lock.mdb beside LMDB (it did, to set the file's mode:
/// a collector in another process then reset the lock file under a
/// restorer, which crashed both and lost leased content).
@Suite("Metadata lock across processes")
struct MetadataLockTests {
    /// Whether another process can take lock.mdb's first byte exclusively
    /// (it must not while a store has the root open).
    func lockFileIsFree(_ lockFile: String, scratch: String) async throws -> Bool {
        let probe = """
            import errno, fcntl, os, sys
            fd = os.open(sys.argv[1], os.O_RDWR)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
            except OSError as e:
                sys.exit(3 if e.errno in (errno.EACCES, errno.EAGAIN) else 4)
            sys.exit(0)
            """
        let child = try Child("/usr/bin/python3", ["-c", probe, lockFile], scratch: scratch)
        let exit = await child.wait()
        #expect(!exit.signaled && (exit.status == 0 || exit.status == 3), "\(exit)")
        return exit.status == 0
    }

    @Test("While a store is open, another process finds its lock file held", arguments: [false, true])
    func lockHeldWhileOpen(withGroup: Bool) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mdblock-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = StoreOptions()
        o.gc.intervalSeconds = 0
        if withGroup { o.storeGroup = getegid() }
        let lockFile = dir + "/root/metadata/lock.mdb"
        do {
            let store = try Snapshotter(root: dir + "/root", options: o)
            _ = try await store.list()
            #expect(try await !lockFileIsFree(lockFile, scratch: dir))
            await store.close()
        }
        // A second open of an existing store (its files' modes are checked
        // again) keeps the lock as well.
        let again = try Snapshotter(root: dir + "/root", options: o)
        _ = try await again.list()
        #expect(try await !lockFileIsFree(lockFile, scratch: dir))
        await again.close()
    }

    /// Set by the hooks and the opener, awaited by the test.
    final class Events: @unchecked Sendable {
        let closing = DispatchSemaphore(value: 0)
        let releaseClose = DispatchSemaphore(value: 0)
        /// Signalled when the second open returns or starts to wait.
        let progress = DispatchSemaphore(value: 0)
        let opened = DispatchSemaphore(value: 0)
        // Locked, not plain vars: ThreadSanitizer does not see
        // DispatchSemaphore's ordering.
        let store = Locked<MetadataStore?>(nil)
        let second = Locked<MetadataStore?>(nil)
    }

    @Test("Opening a root while its last store closes waits for the close, and the lock stays held")
    func reopenWaitsForClose() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mdbclose-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/metadata", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let meta = dir + "/metadata"
        let ev = Events()
        // No local reference: the store must go when the test drops it.
        try ev.store.withLock { $0 = try MetadataStore(directory: meta, mapSize: 1 << 22) }
        let real = try Sys.realpath(meta)
        SharedEnvironments.hooks.withLock {
            $0.willClose = { path in
                guard path == real else { return }
                ev.closing.signal()
                ev.releaseClose.wait()
            }
            $0.waiting = { path in if path == real { ev.progress.signal() } }
        }
        defer { SharedEnvironments.hooks.withLock { $0 = .init() } }
        // The last store of the root goes on one thread: its environment
        // stops just before it closes.
        DispatchQueue.global().async { ev.store.withLock { $0 = nil } }
        await withCheckedContinuation { c in DispatchQueue.global().async { ev.closing.wait(); c.resume() } }
        // The root is opened again meanwhile on another thread.
        DispatchQueue.global().async {
            let opened = try? MetadataStore(directory: meta, mapSize: 1 << 22)
            ev.second.withLock { $0 = opened }
            ev.progress.signal()
            ev.opened.signal()
        }
        // Once the open has returned (the bug) or waits (the fix), the old
        // environment closes.
        await withCheckedContinuation { c in DispatchQueue.global().async { ev.progress.wait(); c.resume() } }
        ev.releaseClose.signal()
        await withCheckedContinuation { c in DispatchQueue.global().async { ev.opened.wait(); c.resume() } }
        #expect(ev.second.withLock { $0 != nil })
        #expect(try await !lockFileIsFree(meta + "/lock.mdb", scratch: dir))
        SharedEnvironments.hooks.withLock { $0 = .init() }
        ev.second.withLock { $0 = nil }
    }

    @Test("A data.mdb that is not LMDB fails the open with an error naming the metadata; the root opens once it is gone")
    func garbageDataFileFailsTheOpen() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mdbbad-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/metadata", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(repeating: 0x5a, count: 64 << 10).write(to: URL(fileURLWithPath: dir + "/metadata/data.mdb"))
        #expect(throws: SnapshotterError.self) { _ = try MetadataStore(directory: dir + "/metadata", mapSize: 1 << 22) }
        do {
            _ = try MetadataStore(directory: dir + "/metadata", mapSize: 1 << 22)
        } catch let e as SnapshotterError {
            #expect(e.message.contains("open metadata at"), "\(e)")
        }
        try FileManager.default.removeItem(atPath: dir + "/metadata/data.mdb")
        let store = try MetadataStore(directory: dir + "/metadata", mapSize: 1 << 22)
        #expect(try store.read { try $0.snapshotCount() } == 0)
    }
}

