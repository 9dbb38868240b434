#if canImport(Glibc)
import Glibc
#endif
import CShim
import Synchronization
import SnapshotterSystem
import SnapshotterStore

/// What makes a lease alive: this store instance's lease file,
/// `<root>/leases/<32 hex>`, created at its first lease and held with an
/// exclusive open-file-description lock (F_OFD_SETLK) until the instance
/// goes. The kernel drops the lock when the last descriptor of it closes
/// (the process exits or is killed), and every process that opens the file
/// sees the lock, whatever its PID namespace or container. Lease records
/// name the file; the collector tries a shared lock on it and treats the
/// records of a file it can lock (or that is gone) as dead.
///
/// A child forked without exec shares the descriptor and so the lock: its
/// parent's leases then stay alive until the child exits too.
package final class LeaseFile: Sendable {
    package let dir: String
    private struct Held: Sendable {
        var fd: Int32
        var name: String
    }
    private let held = Locked<Held?>(nil)

    package init(dir: String) {
        self.dir = dir
    }

    deinit {
        // Removed while still locked, so no collector mistakes it for a
        // dead holder's file that it may reuse; records still naming it
        // (a release that failed) are then dead.
        guard let h = held.withLock({ $0 }) else { return }
        let dirfd = Glibc.open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if dirfd >= 0 {
            _ = unlinkat(dirfd, h.name, 0)
            Glibc.close(dirfd)
        }
        Glibc.close(h.fd)
    }

    /// The name of the locked lease file, created on first use.
    package func name() throws -> String {
        try held.withLock { h in
            if let h { return h.name }
            let made = try Self.create(in: dir)
            h = made
            return made.name
        }
    }

    package static func isValidName(_ name: String) -> Bool {
        name.utf8.count == 32 && name.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    private static func hex16(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    /// Creates and locks a new file. A collector that finds it before it is
    /// locked removes it while holding its own lock on it: our lock then
    /// fails, or succeeds on a file already unlinked; either way we take
    /// another name.
    private static func create(in dir: String) throws -> Held {
        // Only the store's owner opens the store (LMDB's lock file needs
        // write access), so lease files are the owner's alone.
        try Sys.mkdirs(dir, mode: 0o700)
        let dirfd = try Sys.open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        defer { Sys.close(dirfd) }
        for _ in 0..<16 {
            let name = hex16(cshim_random_u64()) + hex16(cshim_random_u64())
            let fd = Glibc.openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd < 0 {
                let e = Glibc.errno
                if e == EEXIST || e == EINTR { continue }
                throw SnapshotterError.errno(e, "create a lease file in \(dir)")
            }
            if cshim_ofd_trylock(fd, 1) != 0 {
                let e = Glibc.errno
                Glibc.close(fd)
                if e == EAGAIN || e == EACCES { continue }
                _ = unlinkat(dirfd, name, 0)
                throw SnapshotterError.errno(e, "lock the lease file \(dir)/\(name) (leases need open-file-description locks, F_OFD_SETLK, on the filesystem of the store)")
            }
            var st = FileStat()
            guard Glibc.fstat(fd, &st) == 0, st.st_nlink > 0 else {
                Glibc.close(fd)
                continue
            }
            return Held(fd: fd, name: name)
        }
        throw SnapshotterError(.busy, "could not create a lease file in \(dir)")
    }

    /// Removes the lease files of holders that are gone (named by a record
    /// or not); returns how many.
    package func removeDead() throws -> Int {
        guard try Sys.lstatIfExists(dir) != nil else { return 0 }
        let probe = LeaseProbe(dir: dir)
        var removed = 0
        for name in try Directory.names(dir) where Self.isValidName(name) {
            if !probe.test(name, remove: true) { removed += 1 }
        }
        return removed
    }
}

/// Tells whether lease files are held, for one pass over the lease
/// records (many records name the same file). Used on one thread.
package final class LeaseProbe {
    private let dirfd: Int32
    private var known: [String: Bool] = [:]

    package init(dir: String) {
        dirfd = Glibc.open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    }

    deinit {
        if dirfd >= 0 { Glibc.close(dirfd) }
    }

    package func isAlive(_ name: String) -> Bool {
        if let k = known[name] { return k }
        let alive = test(name, remove: false)
        known[name] = alive
        return alive
    }

    /// Whether a holder keeps `name` locked. A file that is gone, is not a
    /// regular file or can be locked shared is dead; with `remove` it is
    /// unlinked while our lock is held. When it cannot tell (no permission
    /// to open, out of descriptors), it says alive: a lease kept too long
    /// costs space, one dropped too early costs data.
    package func test(_ name: String, remove: Bool) -> Bool {
        guard LeaseFile.isValidName(name), dirfd >= 0 else { return false }
        var fd: Int32
        repeat {
            fd = Glibc.openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)
        } while fd < 0 && Glibc.errno == EINTR
        if fd < 0 {
            let e = Glibc.errno
            if e == ENOENT { return false }
            if e == ELOOP {
                if remove { _ = unlinkat(dirfd, name, 0) }
                return false
            }
            return true
        }
        defer { Glibc.close(fd) }
        var st = FileStat()
        guard Glibc.fstat(fd, &st) == 0 else { return true }
        if (st.st_mode & S_IFMT) == S_IFREG {
            if cshim_ofd_trylock(fd, 0) != 0 { return true }
        }
        if remove { _ = unlinkat(dirfd, name, 0) }
        return false
    }
}
