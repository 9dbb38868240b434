#if canImport(Glibc)
import Glibc
#endif
import CShim
import Synchronization

/// Opening paths that someone else may be changing while we work: a path
/// is resolved relative to an open directory, never leaves it and never
/// follows a symlink on the way (docs/security.md). This is the one place
/// that turns a relative path into an open file; everything after works on
/// the descriptor.
extension Sys {
    /// Whether openat2(2) is usable here; cleared at the first ENOSYS (old
    /// kernels, some seccomp filters), after which the component walk runs.
    private static let hasOpenat2 = Atomic<Bool>(true)

    /// Opens `relative` (as PathGuard.normalize returns it: no `..`, no
    /// empty or `.` components) below the directory `dirfd`. No component,
    /// the last included, may be a symlink; O_CLOEXEC is always added.
    /// A symlink on the way is an invalid-argument error naming `what`;
    /// other failures keep their errno (ENOENT is not-found, and so on).
    package static func openBeneath(_ dirfd: Int32, _ relative: String, _ flags: Int32, _ mode: mode_t = 0,
                            what: @autoclosure () -> String) throws -> Int32 {
        let all = flags | O_CLOEXEC | O_NOFOLLOW
        if hasOpenat2.load(ordering: .relaxed) {
            while true {
                let fd = injected(.openat, what()) ? -1 : cshim_openat2_beneath(dirfd, relative, all, UInt32(mode), 0)
                if fd >= 0 { return fd }
                let e = Glibc.errno
                if e == EINTR || e == EAGAIN { continue }
                if e == ENOSYS || e == EPERM && probeOpenat2Missing() {
                    hasOpenat2.store(false, ordering: .relaxed)
                    break
                }
                throw beneathError(e, what())
            }
        }
        return try walkBeneath(dirfd, relative, all, mode, what: what())
    }

    /// Opens the directory `relative` below `dirfd` (same rules), for
    /// further *at calls; `relative` may be empty for `dirfd` itself.
    package static func openDirectoryBeneath(_ dirfd: Int32, _ relative: String, what: @autoclosure () -> String) throws -> Int32 {
        if relative.isEmpty {
            return try call(.openat, "open \(what())") { Glibc.openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        }
        return try openBeneath(dirfd, relative, O_RDONLY | O_DIRECTORY, what: what())
    }

    /// The fallback: one O_NOFOLLOW | O_DIRECTORY open per directory
    /// component, then the last one with the caller's flags.
    package static func walkBeneath(_ dirfd: Int32, _ relative: String, _ flags: Int32, _ mode: mode_t,
                                    what: @autoclosure () -> String) throws -> Int32 {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: true)
        guard let last = parts.last, !parts.contains(where: { $0 == ".." || $0 == "." }) else {
            throw SnapshotterError.invalid("\(what()): path \(relative.debugDescription) is not a plain relative path")
        }
        var current = dirfd
        defer { if current != dirfd { Glibc.close(current) } }
        for part in parts.dropLast() {
            var next: Int32
            // EINTR retries this component (a `continue` of the for loop
            // would skip it and open the rest one level too high).
            repeat {
                next = injected(.openat, what()) ? -1 : Glibc.openat(current, String(part), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            } while next < 0 && Glibc.errno == EINTR
            if next < 0 { throw beneathError(Glibc.errno, what()) }
            if current != dirfd { Glibc.close(current) }
            current = next
        }
        while true {
            let fd = injected(.openat, what()) ? -1 : Glibc.openat(current, String(last), flags, mode)
            if fd >= 0 { return fd }
            let e = Glibc.errno
            if e == EINTR { continue }
            throw beneathError(e, what())
        }
    }

    /// EPERM from openat2 is ENOSYS under a seccomp filter that denies
    /// unknown calls; a plain openat of "." tells the two apart.
    private static func probeOpenat2Missing() -> Bool {
        let fd = cshim_openat2_beneath(AT_FDCWD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0)
        if fd >= 0 { Glibc.close(fd); return false }
        return Glibc.errno == ENOSYS || Glibc.errno == EPERM
    }

    private static func beneathError(_ e: Int32, _ what: String) -> SnapshotterError {
        switch e {
        case ELOOP:
            return SnapshotterError.invalid("\(what): a component is a symlink (not followed)")
        case EXDEV:
            return SnapshotterError.invalid("\(what): the path leaves its directory")
        default:
            return SnapshotterError.errno(e, what)
        }
    }
}
