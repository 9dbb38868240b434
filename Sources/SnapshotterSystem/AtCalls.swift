#if canImport(Glibc)
import Glibc
#endif
import CShim

/// System calls on a name inside an open directory (the *at family), for
/// writing below a directory someone else may change: the name is one
/// component, and none of these follows a symlink at it. `what` names the
/// file in errors.
extension Sys {
    /// lstat of `name` in `dirfd`; nil when nothing is there.
    package static func statAt(_ dirfd: Int32, _ name: String, what: @autoclosure () -> String) throws -> FileStat? {
        var st = FileStat()
        while true {
            if (injected(.lstat, "stat \(what())") ? -1 : Glibc.fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW)) == 0 { return st }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == ENOENT { return nil }
            throw SnapshotterError.errno(e, "stat \(what())")
        }
    }

    /// Creates a new file (never through a symlink, never an existing one).
    package static func createAt(_ dirfd: Int32, _ name: String, mode: mode_t, what: @autoclosure () -> String) throws -> Int32 {
        try call(.open, "create \(what())") { Glibc.openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode) }
    }

    /// mkdir; returns false when something is already at `name`.
    package static func mkdirAt(_ dirfd: Int32, _ name: String, mode: mode_t, what: @autoclosure () -> String) throws -> Bool {
        while true {
            if (injected(.mkdir, "mkdir \(what())") ? -1 : Glibc.mkdirat(dirfd, name, mode)) == 0 { return true }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EEXIST { return false }
            throw SnapshotterError.errno(e, "mkdir \(what())")
        }
    }

    /// Hard link from a trusted path (the store's) to `name` in `dirfd`;
    /// false when `name` exists.
    package static func linkAt(_ from: String, _ dirfd: Int32, _ name: String, what: @autoclosure () -> String) throws -> Bool {
        while true {
            if (injected(.link, "link \(from) to \(what())") ? -1 : Glibc.linkat(AT_FDCWD, from, dirfd, name, 0)) == 0 { return true }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EEXIST { return false }
            throw SnapshotterError.errno(e, "link \(from) to \(what())")
        }
    }

    /// linkat of `fromName` in the directory open as `fromDir` (whose full
    /// path `from` errors name) to `name` in `dirfd`; false when it exists.
    package static func linkAt(_ fromDir: Int32, _ fromName: String, from: String, _ dirfd: Int32, _ name: String,
                       what: @autoclosure () -> String) throws -> Bool {
        while true {
            if (injected(.link, "link \(from) to \(what())") ? -1 : Glibc.linkat(fromDir, fromName, dirfd, name, 0)) == 0 { return true }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EEXIST { return false }
            throw SnapshotterError.errno(e, "link \(from) to \(what())")
        }
    }

    /// Renames within one directory, replacing what is at `to` (a symlink
    /// there is replaced, not followed).
    package static func renameAt(_ dirfd: Int32, _ from: String, _ to: String, what: @autoclosure () -> String) throws {
        _ = try call(.rename, "rename \(from) to \(what())") { Glibc.renameat(dirfd, from, dirfd, to) }
    }

    /// Renames within one directory unless `to` exists; false when it does.
    package static func renameNoReplaceAt(_ dirfd: Int32, _ from: String, _ to: String, what: @autoclosure () -> String) throws -> Bool {
        while true {
            if (injected(.rename, "rename \(from) to \(what())") ? -1 : cshim_rename_noreplace(dirfd, from, dirfd, to)) == 0 { return true }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EEXIST { return false }
            if e == EINVAL || e == ENOSYS {
                // Filesystems without RENAME_NOREPLACE: link + unlink.
                if Glibc.linkat(dirfd, from, dirfd, to, 0) == 0 { _ = Glibc.unlinkat(dirfd, from, 0); return true }
                let le = Glibc.errno
                if le == EEXIST { return false }
                throw SnapshotterError.errno(le, "link to \(what())")
            }
            throw SnapshotterError.errno(e, "rename to \(what())")
        }
    }

    /// unlink (or rmdir with AT_REMOVEDIR) that ignores a missing name.
    package static func unlinkAt(_ dirfd: Int32, _ name: String, flags: Int32 = 0, what: @autoclosure () -> String) throws {
        while (injected(.unlink, "remove \(what())") ? -1 : Glibc.unlinkat(dirfd, name, flags)) != 0 {
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == ENOENT { return }
            throw SnapshotterError.errno(e, "remove \(what())")
        }
    }

    /// Names in the open directory `dirfd` (read through a descriptor of
    /// its own, so `dirfd`'s offset is left alone).
    package static func namesAt(_ dirfd: Int32, what: @autoclosure () -> String) throws -> [String] {
        let fd = try call(.open, "open \(what())") { Glibc.openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard let dir = fdopendir(fd) else {
            let e = Glibc.errno
            Glibc.close(fd)
            throw SnapshotterError.errno(e, "open directory \(what())")
        }
        defer { closedir(dir) }
        var result: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { result.append(name) }
        }
        return result
    }
}
