#if canImport(Glibc)
import Glibc
#endif
import CShim

/// `struct stat`; inside `Sys` the name `stat` is taken by the method.
package typealias FileStat = Glibc.stat

/// stat(2); at file scope, where the name resolves to the function.
@inline(__always)
private func statFunction(_ path: String, _ st: inout FileStat) -> Int32 { stat(path, &st) }

/// Every system call the store makes goes through here, so errno handling,
/// EINTR retries and error messages are in one place.
package enum Sys {
    /// Runs `body` until it stops failing with EINTR; a result of -1 throws
    /// an error that says `what` failed. Tests cannot fail such a call:
    /// prefer `call(.op, ...)` below.
    @inline(__always)
    package static func call<T: BinaryInteger>(_ what: @autoclosure () -> String, _ body: () -> T) throws -> T {
        while true {
            let r = body()
            if r != -1 { return r }
            let e = Glibc.errno
            if e == EINTR { continue }
            throw SnapshotterError.errno(e, what())
        }
    }

    /// `call` for the system call `op`, which a test can make fail
    /// (SysFaults.swift): an injected errno takes the place of the call's.
    @inline(__always)
    package static func call<T: BinaryInteger>(_ op: SysOp, _ what: @autoclosure () -> String, _ body: () -> T) throws -> T {
        while true {
            let r = injected(op, what()) ? -1 : body()
            if r != -1 { return r }
            let e = Glibc.errno
            if e == EINTR { continue }
            throw SnapshotterError.errno(e, what())
        }
    }

    package static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) throws -> Int32 {
        try call(.open, "open \(path)") { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    package static func openat(_ dirfd: Int32, _ path: String, _ flags: Int32, _ mode: mode_t = 0) throws -> Int32 {
        try call(.openat, "open \(path)") { Glibc.openat(dirfd, path, flags | O_CLOEXEC, mode) }
    }

    /// openat of `name` in the directory open as `dirfd`, whose full path
    /// `full` is what errors (and fault rules) name.
    package static func openat(_ dirfd: Int32, _ name: String, _ flags: Int32, _ mode: mode_t, _ full: String) throws -> Int32 {
        try call(.open, "open \(full)") { Glibc.openat(dirfd, name, flags | O_CLOEXEC, mode) }
    }

    /// lstat of `name` in the directory open as `dirfd` (errors name `dir`);
    /// nil when it does not exist.
    package static func lstatIfExists(at dirfd: Int32, _ name: String, _ dir: String) throws -> FileStat? {
        var st = FileStat()
        while true {
            if (injected(.lstat, dir + "/" + name) ? -1 : Glibc.fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW)) == 0 { return st }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == ENOENT { return nil }
            throw SnapshotterError.errno(e, "stat \(dir)/\(name)")
        }
    }

    /// unlink of `name` in the directory open as `dirfd`; a missing name is
    /// not an error. Errors name `full`.
    package static func unlinkIfExists(at dirfd: Int32, _ name: String, _ full: String) throws {
        while true {
            if (injected(.unlink, full) ? -1 : Glibc.unlinkat(dirfd, name, 0)) == 0 { return }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == ENOENT { return }
            throw SnapshotterError.errno(e, "unlink \(full)")
        }
    }

    /// renameat2(RENAME_NOREPLACE) of two names in the directory open as
    /// `dirfd` (whose path is `dir`); false when `to` exists.
    package static func renameNoReplace(at dirfd: Int32, _ from: String, _ to: String, in dir: String) throws -> Bool {
        while true {
            let what = "rename \(dir)/\(from) to \(dir)/\(to)"
            let r = injected(.rename, what) ? -1 : cshim_rename_noreplace(dirfd, from, dirfd, to)
            if r == 0 { return true }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EEXIST { return false }
            if e == EINVAL || e == ENOSYS {
                // Filesystems without RENAME_NOREPLACE: link + unlink.
                if (injected(.link, what) ? -1 : Glibc.linkat(dirfd, from, dirfd, to, 0)) == 0 { _ = Glibc.unlinkat(dirfd, from, 0); return true }
                let le = Glibc.errno
                if le == EEXIST { return false }
                throw SnapshotterError.errno(le, what)
            }
            throw SnapshotterError.errno(e, what)
        }
    }

    package static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    package static func fstat(_ fd: Int32, _ what: String) throws -> FileStat {
        var st = FileStat()
        _ = try call(.fstat, "stat \(what)") { Glibc.fstat(fd, &st) }
        return st
    }

    package static func stat(_ path: String) throws -> FileStat {
        var st = FileStat()
        _ = try call(.stat, "stat \(path)") { statFunction(path, &st) }
        return st
    }

    package static func lstat(_ path: String) throws -> FileStat {
        var st = FileStat()
        _ = try call(.lstat, "stat \(path)") { Glibc.lstat(path, &st) }
        return st
    }

    /// `lstat` that returns nil for a path that does not exist.
    package static func lstatIfExists(_ path: String) throws -> FileStat? {
        var st = FileStat()
        while true {
            if (injected(.lstat, path) ? -1 : Glibc.lstat(path, &st)) == 0 { return st }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == ENOENT { return nil }
            throw SnapshotterError.errno(e, "stat \(path)")
        }
    }

    package static func fsync(_ fd: Int32, _ what: String) throws {
        _ = try call(.fsync, "fsync \(what)") { Glibc.fsync(fd) }
        SyncProbe.note(what)
    }

    /// Writes back every dirty page of the filesystem holding `fd` and
    /// flushes it (one barrier for many files); reports the writeback errors
    /// of that filesystem since `fd` was opened.
    package static func syncfs(_ fd: Int32, _ what: String) throws {
        _ = try call(.syncfs, "syncfs \(what)") { cshim_syncfs(fd) }
        SyncProbe.note("syncfs " + what)
    }

    /// Starts writing a file's dirty pages back without waiting; only a
    /// hint (the fsync that follows is what makes it durable).
    package static func startWriteback(_ fd: Int32) {
        _ = cshim_start_writeback(fd)
    }

    package static func fsyncDirectory(_ path: String) throws {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fsync(fd, path)
    }

    package static func rename(_ from: String, _ to: String) throws {
        _ = try call(.rename, "rename \(from) to \(to)") { Glibc.rename(from, to) }
    }

    /// Renames unless `to` exists; returns false when it does.
    package static func renameNoReplace(_ from: String, _ to: String) throws -> Bool {
        while true {
            let r = injected(.rename, "rename \(from) to \(to)") ? -1 : cshim_rename_noreplace(AT_FDCWD, from, AT_FDCWD, to)
            if r == 0 { return true }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EEXIST { return false }
            if e == EINVAL || e == ENOSYS {
                // Filesystems without RENAME_NOREPLACE: link + unlink gives
                // the same no-clobber guarantee.
                if (injected(.link, "link \(from) to \(to)") ? -1 : Glibc.link(from, to)) == 0 { _ = Glibc.unlink(from); return true }
                let le = Glibc.errno
                if le == EEXIST { return false }
                throw SnapshotterError.errno(le, "link \(from) to \(to)")
            }
            throw SnapshotterError.errno(e, "rename \(from) to \(to)")
        }
    }

    /// Hard link; returns false when `to` already exists.
    package static func link(_ from: String, _ to: String) throws -> Bool {
        while true {
            if (injected(.link, "link \(from) to \(to)") ? -1 : Glibc.link(from, to)) == 0 { return true }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EEXIST { return false }
            throw SnapshotterError.errno(e, "link \(from) to \(to)")
        }
    }

    package static func unlink(_ path: String) throws {
        _ = try call(.unlink, "unlink \(path)") { Glibc.unlink(path) }
    }

    /// Unlink that ignores a missing file.
    package static func unlinkIfExists(_ path: String) throws {
        while (injected(.unlink, path) ? -1 : Glibc.unlink(path)) != 0 {
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == ENOENT { return }
            throw SnapshotterError.errno(e, "unlink \(path)")
        }
    }

    /// mkdir -p, with `mode` for the directories it creates.
    package static func mkdirs(_ path: String, mode: mode_t = 0o755) throws {
        if path.isEmpty || path == "/" { return }
        var st = FileStat()
        if statFunction(path, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR { return }
            throw SnapshotterError(.invalidArgument, "\(path) exists and is not a directory")
        }
        let parent = Paths.dirname(path)
        if parent != path { try mkdirs(parent, mode: mode) }
        while (injected(.mkdir, path) ? -1 : Glibc.mkdir(path, mode)) != 0 {
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EEXIST, statFunction(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR { return }
            throw SnapshotterError.errno(e, "mkdir \(path)")
        }
    }

    package static func pread(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, _ offset: Int64, _ what: String) throws -> Int {
        try call(.pread, "read \(what)") { Glibc.pread(fd, buf, count, off_t(offset)) }
    }

    package static func read(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, _ what: String) throws -> Int {
        try call(.read, "read \(what)") { Glibc.read(fd, buf, count) }
    }

    /// Writes all of `count` bytes at `offset`.
    package static func pwriteAll(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int, _ offset: Int64, _ what: String) throws {
        var done = 0
        while done < count {
            let n = try call(.pwrite, "write \(what)") { Glibc.pwrite(fd, buf + done, count - done, off_t(offset) + off_t(done)) }
            if n == 0 { throw SnapshotterError(.io, "write \(what): no progress") }
            done += n
        }
    }

    /// Writes all of `count` bytes at the current offset.
    package static func writeAll(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int, _ what: String) throws {
        var done = 0
        while done < count {
            let n = try call(.write, "write \(what)") { Glibc.write(fd, buf + done, count - done) }
            if n == 0 { throw SnapshotterError(.io, "write \(what): no progress") }
            done += n
        }
    }

    /// Reads exactly `count` bytes unless the file ends first; returns how
    /// many were read.
    package static func readFully(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, _ what: String) throws -> Int {
        var done = 0
        while done < count {
            let n = try read(fd, buf + done, count - done, what)
            if n == 0 { break }
            done += n
        }
        return done
    }

    package static func ftruncate(_ fd: Int32, _ size: Int64, _ what: String) throws {
        _ = try call(.ftruncate, "truncate \(what)") { Glibc.ftruncate(fd, off_t(size)) }
    }

    /// lseek(SEEK_DATA/SEEK_HOLE); returns nil at ENXIO (no more data).
    package static func seek(_ fd: Int32, _ offset: Int64, _ whence: Int32, _ what: String) throws -> Int64? {
        while true {
            let r = injected(.lseek, what) ? -1 : Glibc.lseek(fd, off_t(offset), whence)
            if r >= 0 { return Int64(r) }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == ENXIO { return nil }
            throw SnapshotterError.errno(e, "seek \(what)")
        }
    }

    package static func fchmod(_ fd: Int32, _ mode: mode_t, _ what: String) throws {
        _ = try call(.fchmod, "chmod \(what)") { Glibc.fchmod(fd, mode) }
    }

    package static func fchown(_ fd: Int32, _ uid: uid_t, _ gid: gid_t, _ what: String) throws {
        _ = try call(.fchown, "chown \(what)") { Glibc.fchown(fd, uid, gid) }
    }

    /// Sets the modification time (and access time to the same value).
    package static func futimens(_ fd: Int32, mtimeNanos: Int64, _ what: String) throws {
        let t = timespec(nanos: mtimeNanos)
        let ts = [t, t]
        _ = try call(.futimens, "set times of \(what)") { Glibc.futimens(fd, ts) }
    }

    package static func utimensat(_ path: String, mtimeNanos: Int64) throws {
        let t = timespec(nanos: mtimeNanos)
        let ts = [t, t]
        _ = try call(.utimensat, "set times of \(path)") { Glibc.utimensat(AT_FDCWD, path, ts, 0) }
    }

    /// Nanoseconds since the epoch as a timespec with 0 <= tv_nsec < 1e9
    /// (floor division: -1.5 s is -2 s + 0.5e9 ns; the kernel refuses a
    /// negative tv_nsec). Any Int64 converts without overflow.
    package static func timespec(nanos: Int64) -> Glibc.timespec {
        var (sec, nsec) = nanos.quotientAndRemainder(dividingBy: 1_000_000_000)
        if nsec < 0 {
            sec -= 1
            nsec += 1_000_000_000
        }
        return Glibc.timespec(tv_sec: Int(sec), tv_nsec: Int(nsec))
    }

    package static func realpath(_ path: String) throws -> String {
        guard let p = Glibc.realpath(path, nil) else {
            throw SnapshotterError.errno(Glibc.errno, "resolve \(path)")
        }
        defer { free(p) }
        return String(cString: p)
    }

    /// A stat's mtime in nanoseconds since the epoch (tv_sec may be
    /// negative, tv_nsec is not). Times beyond what Int64 nanoseconds hold
    /// (before 1678 or after 2262) are clamped rather than trapping.
    package static func mtimeNanos(_ st: FileStat) -> Int64 {
        let (scaled, over) = Int64(st.st_mtim.tv_sec).multipliedReportingOverflow(by: 1_000_000_000)
        if over { return st.st_mtim.tv_sec < 0 ? .min : .max }
        let (sum, over2) = scaled.addingReportingOverflow(Int64(st.st_mtim.tv_nsec))
        return over2 ? .max : sum
    }

    package static func nowNanos() -> Int64 {
        var ts = Glibc.timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    package static func monotonicNanos() -> UInt64 {
        var ts = Glibc.timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Effective uid 0, read once (it does not change while we run).
    package static let isRoot: Bool = geteuid() == 0
    package static let pid: Int32 = getpid()

    package static let seekData: Int32 = cshim_seek_data()
    package static let seekHole: Int32 = cshim_seek_hole()
}

/// Lexical path helpers; no file system access.
package enum Paths {
    package static func join(_ a: String, _ b: String) -> String {
        if a.isEmpty { return b }
        if a.hasSuffix("/") { return a + b }
        return a + "/" + b
    }

    package static func dirname(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return "." }
        if i == path.startIndex { return "/" }
        return String(path[..<i])
    }

    package static func basename(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: i)...])
    }
}

extension timespec {
    /// Nanoseconds since the epoch, before 1970 too (tv_nsec stays in
    /// 0..<1e9, as the kernel requires).
    package init(nanos: Int64) {
        var secs = nanos / 1_000_000_000
        var frac = nanos % 1_000_000_000
        if frac < 0 { frac += 1_000_000_000; secs -= 1 }
        self.init(tv_sec: Int(secs), tv_nsec: Int(frac))
    }
}
