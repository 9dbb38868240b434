#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem

/// Who may read the store (docs/store-health.md, "Permissions"): by default
/// only its owner (directories 0700, content 0400, metadata 0600); with a
/// group, that group may read too (0750, 0440, 0640, chgrp'd to it).
package struct StorePermissions: Sendable, Equatable {
    package var group: gid_t?

    package var directoryMode: mode_t { group == nil ? 0o700 : 0o750 }
    package var contentMode: mode_t { group == nil ? 0o400 : 0o440 }
    package var databaseMode: mode_t { group == nil ? 0o600 : 0o640 }

    /// A directory of the store's own layout: made with the mode, and an
    /// existing one (an older store's 0755) brought to it.
    package func ownDirectory(_ path: String) throws {
        try Sys.mkdirs(path, mode: directoryMode)
        let fd = try Sys.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        defer { Sys.close(fd) }
        try apply(fd, mode: directoryMode, path)
    }

    /// Sets the mode (and group) of an open file or directory of the store.
    package func apply(_ fd: Int32, mode: mode_t, _ what: String) throws {
        if let group {
            do {
                _ = try Sys.call("chgrp \(what) to group \(group)") { fchown(fd, uid_t.max, group) }
            } catch let e as SnapshotterError {
                throw e.context("the store group must be one the process belongs to")
            }
        }
        try Sys.fchmod(fd, mode, what)
    }

    package init(group: gid_t? = nil) {
        self.group = group
    }
}
