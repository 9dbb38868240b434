#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import CShim

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

    /// How linkat(2) names the open file.
    package enum LinkOpenFileVia: Sendable {
        /// The descriptor itself (AT_EMPTY_PATH): needs CAP_DAC_READ_SEARCH,
        /// or on newer kernels (6.10 on) a file the caller's credentials opened.
        case descriptor
        /// /proc/self/fd/N with AT_SYMLINK_FOLLOW: no privilege, but a walk
        /// of /proc that costs more than the link (~18 against ~11 us here).
        case proc
    }

    /// How this process links open files (learnt on the first refusal).
    package static let linkWay = LinkWay()

    /// Gives the file open as `fd` the name `name` in the directory open as
    /// `dirfd` (`path` is that name's full path, for messages): the inode
    /// that was read, whatever its old path names now. By the descriptor
    /// when the process may, else through /proc (the same inode either way).
    package static func linkOpenFile(_ fd: Int32, at dirfd: Int32, _ name: String, path: @autoclosure () -> String,
                                     what: @autoclosure () -> String) throws -> LinkOpenFileResult {
        while injected(.link, "link \(what()) to \(path())") {
            let e = Glibc.errno
            if e != EINTR { return try linkResult(e, path: path(), what: what()) }
        }
        let e = linkWay.link(descriptor: { linkErrno(fd, at: dirfd, name, via: .descriptor) },
                             proc: { linkErrno(fd, at: dirfd, name, via: .proc) })
        return try linkResult(e, path: path(), what: what())
    }

    /// linkat of the open file `via` one way, retried on EINTR: 0 or errno.
    package static func linkErrno(_ fd: Int32, at dirfd: Int32, _ name: String, via: LinkOpenFileVia) -> Int32 {
        while true {
            let r: Int32
            switch via {
            case .descriptor: r = Glibc.linkat(fd, "", dirfd, name, cshim_at_empty_path())
            case .proc: r = Glibc.linkat(AT_FDCWD, "/proc/self/fd/\(fd)", dirfd, name, AT_SYMLINK_FOLLOW)
            }
            if r == 0 { return 0 }
            if Glibc.errno != EINTR { return Glibc.errno }
        }
    }

    package static func linkResult(_ e: Int32, path: @autoclosure () -> String,
                                   what: @autoclosure () -> String) throws -> LinkOpenFileResult {
        switch e {
        case 0: return .linked
        case EEXIST: return .exists
        // ENOENT: no /proc, or the file was unlinked after it was opened.
        case ENOENT, EXDEV, EPERM, EACCES, EOPNOTSUPP, EMLINK: return .unavailable
        default: throw SnapshotterError.errno(e, "link \(what()) to \(path())")
        }
    }
}

/// Links by descriptor (AT_EMPTY_PATH) until that is refused where /proc
/// works: then the process lacks the privilege and every later link goes
/// through /proc at once, not one refused call per file.
package final class LinkWay: Sendable {
    private let descriptorRefused = Atomic<Bool>(false)

    package init() {}

    package var usesDescriptor: Bool { !descriptorRefused.load(ordering: .relaxed) }

    /// The errno (0: linked) of `descriptor`, or of `proc` when the
    /// descriptor way is refused (ENOENT, which a file with no name left
    /// gives as well: /proc then says so too).
    package func link(descriptor: () -> Int32, proc: () -> Int32) -> Int32 {
        if descriptorRefused.load(ordering: .relaxed) { return proc() }
        let e = descriptor()
        guard e == ENOENT else { return e }
        let p = proc()
        if p == 0 { descriptorRefused.store(true, ordering: .relaxed) }
        return p
    }
}
