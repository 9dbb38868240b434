#if canImport(Glibc)
import Glibc
#endif

extension Sys {
    package enum LinkOpenFileResult: Sendable, Equatable {
        case linked
        /// Something already has the new name.
        case exists
        /// This inode cannot be linked here (another file system, links
        /// refused, /proc not mounted, or the file has no name left): the
        /// caller copies from the descriptor instead.
        case unavailable
    }

    /// Gives the file open as `fd` the name `name` in the directory open as
    /// `dirfd` (`path` is that name's full path, for messages): the inode
    /// that was read, whatever its old path names now. linkat(2) of
    /// /proc/self/fd/N with AT_SYMLINK_FOLLOW needs no privilege
    /// (AT_EMPTY_PATH would).
    package static func linkOpenFile(_ fd: Int32, at dirfd: Int32, _ name: String, path: @autoclosure () -> String,
                                     what: @autoclosure () -> String) throws -> LinkOpenFileResult {
        let proc = "/proc/self/fd/\(fd)"
        while true {
            if (injected(.link, "link \(what()) to \(path())") ? -1 : Glibc.linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW)) == 0 {
                return .linked
            }
            let e = Glibc.errno
            switch e {
            case EINTR: continue
            case EEXIST: return .exists
            // ENOENT: no /proc, or the file was unlinked after it was opened.
            case ENOENT, EXDEV, EPERM, EACCES, EOPNOTSUPP, EMLINK: return .unavailable
            default: throw SnapshotterError.errno(e, "link \(what()) to \(path())")
            }
        }
    }
}
