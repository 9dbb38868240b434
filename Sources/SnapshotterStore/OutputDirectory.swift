#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SnapshotterSystem

/// A restore's output directory, held open. Every write below it is made
/// relative to directory descriptors opened from its root without leaving
/// it or following a symlink (Sys.openBeneath), so a subdirectory swapped
/// for a symlink after it was checked cannot send a byte elsewhere
/// (docs/security.md). It remembers what the restore created, so a failed
/// restore can take it back, and what it changed, so a durable restore can
/// sync it.
package final class OutputDirectory: Sendable {
    /// A file to write: its directory relative to the root ("" for the
    /// root itself) and its name there.
    package struct Target: Sendable {
        package var dir: String
        package var name: String
        /// Nothing was at the name when the restore was prepared.
        package var wasAbsent: Bool
        /// What the prepare found of the store's read-only link.
        package var storeLink: StoreLink
        /// The file's index in the restore; `rollBack` asks for the
        /// target by it.
        package var index: UInt32

        package init(dir: String, name: String, wasAbsent: Bool, storeLink: StoreLink = .unchecked, index: UInt32 = 0) {
            self.dir = dir
            self.name = name
            self.wasAbsent = wasAbsent
            self.storeLink = storeLink
            self.index = index
        }
    }

    /// Whether a target's store link may be used, as checked when the
    /// restore was prepared (under its lease): `.unchecked` when the link
    /// may still appear (content yet to be fetched).
    package enum StoreLink: UInt8, Sendable { case unchecked, usable, unusable }

    /// A temporary name in one of the output's directories.
    package struct Temp: Sendable {
        package var dir: String
        package var name: String
    }

    /// The root as resolved when opened; for messages only.
    package let path: String
    package let durable: Bool
    private let rootFD: Int32
    /// Directories of the caller's path this restore made, parents first.
    private let createdRoots: [String]

    private struct State {
        /// Open directories by relative path, with how many calls use each.
        var open: [PathKey: (fd: Int32, users: Int)] = [:]
        /// Directories this restore made (relative), parents first.
        var createdDirs: [String] = []
        /// Files put where nothing was before, by index (4 bytes a file).
        var placed: [UInt32] = []
        /// Directories whose entries this restore changed.
        var changed = Set<PathKey>()
    }
    private let state = Locked(State())
    /// Open directory descriptors kept at most (more are closed when unused).
    package static let openLimit = 128

    /// Opens (creating it and its parents if needed) the directory the
    /// caller names; symlinks in that path are the caller's and followed.
    package init(opening outputDir: String, durable: Bool) throws {
        var missing: [String] = []
        var p = outputDir
        while !p.isEmpty, p != "/", p != ".", try Sys.lstatIfExists(p) == nil {
            missing.append(p)
            p = Paths.dirname(p)
        }
        try Sys.mkdirs(outputDir)
        createdRoots = missing.reversed()
        rootFD = try Sys.open(outputDir, O_RDONLY | O_DIRECTORY)
        path = (try? Sys.realpath(outputDir)) ?? outputDir
        self.durable = durable
    }

    deinit {
        for (_, e) in state.withLock({ $0.open }) { Sys.close(e.fd) }
        Sys.close(rootFD)
    }

    package func display(_ dir: String, _ name: String) -> String {
        dir.isEmpty ? path + "/" + name : path + "/" + dir + "/" + name
    }

    package func display(_ t: Target) -> String { display(t.dir, t.name) }

    /// Runs `body` with the open directory `dir` (relative to the root).
    package func withDirectory<T>(_ dir: String, _ body: (Int32) throws -> T) throws -> T {
        if dir.isEmpty { return try body(rootFD) }
        let key = PathKey(dir)
        let fd = try acquire(key)
        // Get and set, not `?.users -= 1`: its modify accessor allocates.
        defer { state.withLock { s in if let e = s.open[key] { s.open[key] = (e.fd, e.users - 1) } } }
        return try body(fd)
    }

    private func acquire(_ dir: PathKey) throws -> Int32 {
        let cached = state.withLock { s -> Int32? in
            guard let e = s.open[dir] else { return nil }
            s.open[dir] = (e.fd, e.users + 1)
            return e.fd
        }
        if let cached { return cached }
        let fd = try Sys.openDirectoryBeneath(rootFD, dir.path, what: "\(path)/\(dir.path)")
        return state.withLock { s in
            if let e = s.open[dir] {
                Sys.close(fd)
                s.open[dir] = (e.fd, e.users + 1)
                return e.fd
            }
            if s.open.count >= Self.openLimit {
                for (k, e) in s.open where e.users == 0 {
                    Sys.close(e.fd)
                    s.open[k] = nil
                }
            }
            s.open[dir] = (fd, 1)
            return fd
        }
    }

    /// Whether the directory `dir` exists (a symlink or a file on the way
    /// is an error).
    package func directoryExists(_ dir: String) throws -> Bool {
        do {
            return try withDirectory(dir) { _ in true }
        } catch let e as SnapshotterError where e.code == .notFound {
            return false
        }
    }

    /// `mkdir -p` of `dir` below the root, one component at a time
    /// relative to its parent, recording what it made.
    package func makeDirectory(_ dir: String) throws {
        if try dir.isEmpty || directoryExists(dir) { return }
        var parent = ""
        for part in dir.split(separator: "/") {
            let name = String(part)
            let child = parent.isEmpty ? name : parent + "/" + name
            let made = try withDirectory(parent) { try Sys.mkdirAt($0, name, mode: 0o755, what: display(parent, name)) }
            if made {
                state.withLock { s in
                    s.createdDirs.append(child)
                    s.changed.insert(PathKey(parent))
                }
            }
            parent = child
        }
    }

    /// Removes temporary files that killed restores left in `dir`
    /// (OutputTemps.isStale); returns how many.
    @discardableResult
    package func sweepStaleTemps(in dir: String) throws -> Int {
        try withDirectory(dir) { try OutputTemps.sweep($0, what: dir.isEmpty ? path : path + "/" + dir) }
    }

    /// lstat of a target; nil when nothing is there.
    package func stat(_ t: Target) throws -> FileStat? {
        try withDirectory(t.dir) { try Sys.statAt($0, t.name, what: display(t)) }
    }

    /// A fresh temporary name next to `t` (nothing is created).
    package func tempName(for t: Target) -> Temp { Temp(dir: t.dir, name: OutputTemps.newName()) }

    /// Creates the temporary file, open for writing.
    package func create(_ temp: Temp) throws -> Int32 {
        try withDirectory(temp.dir) { try Sys.createAt($0, temp.name, mode: 0o600, what: display(temp.dir, temp.name)) }
    }

    /// Hard-links `name` of the store directory open as `dirFD` (path
    /// `from`) at the temporary name; false when the name is taken.
    package func link(_ dirFD: Int32, _ name: String, from: String, at temp: Temp) throws -> Bool {
        try withDirectory(temp.dir) { try Sys.linkAt(dirFD, name, from: from, $0, temp.name, what: display(temp.dir, temp.name)) }
    }

    /// Hard-links `name` of the store directory open as `dirFD` (path
    /// `from`) straight at its target; false when something is there.
    package func link(_ dirFD: Int32, _ name: String, from: String, at t: Target) throws -> Bool {
        let done = try withDirectory(t.dir) { try Sys.linkAt(dirFD, name, from: from, $0, t.name, what: display(t)) }
        if done { noteCreated(t) }
        return done
    }

    package func remove(_ temp: Temp) {
        try? withDirectory(temp.dir) { try Sys.unlinkAt($0, temp.name, what: display(temp.dir, temp.name)) }
    }

    /// Renames a finished temporary file to its target, replacing what is
    /// there only when overwriting; false when the target appeared.
    package func place(_ temp: Temp, at t: Target, overwrite: Bool, linked: Bool) throws -> Bool {
        let placed = try withDirectory(t.dir) { fd -> Bool in
            if overwrite {
                try Sys.renameAt(fd, temp.name, t.name, what: display(t))
                // rename(2) between two links of one inode does nothing.
                if linked { try? Sys.unlinkAt(fd, temp.name, what: display(temp.dir, temp.name)) }
                return true
            }
            return try Sys.renameNoReplaceAt(fd, temp.name, t.name, what: display(t))
        }
        if placed { noteCreated(t) }
        return placed
    }

    private func noteCreated(_ t: Target) {
        state.withLock { s in
            if t.wasAbsent { s.placed.append(t.index) }
            // Only a durable restore syncs them.
            if durable { s.changed.insert(PathKey(t.dir)) }
        }
    }

    /// Takes back what this restore put in the output: files where nothing
    /// was before, then the directories it made (files it replaced while
    /// overwriting stay replaced). Best effort: it runs on a failure path.
    /// `target` gives back a placed target by its index.
    package func rollBack(_ target: (UInt32) -> Target?) {
        let (placed, dirs) = state.withLock { s in
            defer { s.placed = []; s.createdDirs = [] }
            return (s.placed, s.createdDirs)
        }
        for t in placed.lazy.compactMap(target) {
            try? withDirectory(t.dir) { try Sys.unlinkAt($0, t.name, what: display(t)) }
        }
        for d in dirs.reversed() {
            let parent = d.contains("/") ? Paths.dirname(d) : ""
            let name = String(d.split(separator: "/").last ?? "")
            try? withDirectory(parent) { try Sys.unlinkAt($0, name, flags: AT_REMOVEDIR, what: display(parent, name)) }
        }
        for r in createdRoots.reversed() { _ = Glibc.rmdir(r) }
    }

    /// Makes every directory this restore changed durable, with the parents
    /// of those it made.
    package func syncChanged() throws {
        let dirs = state.withLock { $0.changed }
        for d in dirs.map(\.path).sorted(by: PathGuard.precedes) {
            try withDirectory(d) { try Sys.fsync($0, d.isEmpty ? path : path + "/" + d) }
        }
        for r in createdRoots { try Sys.fsyncDirectory(Paths.dirname(r)) }
    }
}
