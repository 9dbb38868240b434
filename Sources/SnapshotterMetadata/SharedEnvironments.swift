#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore

/// One LMDB environment per root in a process. LMDB must not be opened
/// twice in one process: its fcntl lock on lock.mdb is the process's, and
/// closing any descriptor of that file drops it, after which another
/// process opening the store finds it unused and initializes the lock file
/// again under this one. So stores on the same root share one environment,
/// and a root whose last environment is still closing is opened only once
/// that close has finished. A forked child must not use its parent's
/// environment (LMDB: none across fork): environments are keyed by fork
/// generation too.
enum SharedEnvironments {
    private struct Entry {
        weak var env: LMDBEnvironment?
        /// Environments of this key created and not yet closed (0 or 1).
        var unclosed = 0
    }

    private static let table = ForkSafeLock<[String: Entry]>([:])
    /// Broadcast when an environment has closed.
    private static let closes = Gate()

    /// Seams for the tests: `willClose` runs in an environment's deinit
    /// before it closes, `waiting` when an open waits for a close.
    package struct Hooks: Sendable {
        package var willClose: (@Sendable (String) -> Void)?
        package var waiting: (@Sendable (String) -> Void)?
        package init() {}
    }
    package static let hooks = Locked(Hooks())

    static func environment(path: String, mapSize: Int, permissions: StorePermissions) throws -> LMDBEnvironment {
        let key = "\(Fork.generation) " + path
        while true {
            let found: LMDBEnvironment? = try table.withLock { t in
                if let existing = t[key]?.env { return existing }
                if let entry = t[key], entry.unclosed > 0 { return nil }
                let e = try open(path, mapSize: mapSize, permissions: permissions, key: key)
                t[key] = Entry(env: e, unclosed: 1)
                return e
            }
            if let found { return found }
            hooks.withLock { $0.waiting }?(path)
            closes.locked {
                _ = closes.wait(until: { table.withLock { ($0[key]?.unclosed ?? 0) == 0 } })
            }
        }
    }

    private static func open(_ path: String, mapSize: Int, permissions: StorePermissions,
                             key: String) throws -> LMDBEnvironment {
        // The files get their mode (an older store's 0644 too) and group
        // before LMDB opens them: never by a descriptor of lock.mdb closed
        // beside an open environment (above).
        for name in ["data.mdb", "lock.mdb"] {
            let file = path + "/" + name
            let fd = try Sys.open(file, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, permissions.databaseMode)
            defer { Sys.close(fd) }
            try permissions.apply(fd, mode: permissions.databaseMode, file)
        }
        return try LMDBEnvironment(directory: path, mapSize: mapSize, maxDatabases: 16, mode: permissions.databaseMode,
                                   willClose: { hooks.withLock { $0.willClose }?(path) },
                                   didClose: { closed(key) })
    }

    private static func closed(_ key: String) {
        table.withLock { t in
            guard var entry = t[key] else { return }
            entry.unclosed = max(0, entry.unclosed - 1)
            t[key] = entry.unclosed == 0 && entry.env == nil ? nil : entry
        }
        closes.locked { closes.broadcast() }
    }
}
