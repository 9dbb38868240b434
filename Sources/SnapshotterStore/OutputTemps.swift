#if canImport(Glibc)
import Glibc
#endif
import CShim
import SnapshotterSystem

/// Temporary files a restore writes in the output before renaming them:
/// named `.snapshotter-tmp-<pid>.<start>-<n>-<random>`, where pid and start
/// (the process's start time in ticks since boot) name the process that
/// writes it. A killed restore leaves its temporary files behind; the next
/// restore that writes to the same directory removes those whose process is
/// gone, and never one a running process may still write
/// (docs/design-notes.md).
package enum OutputTemps {
    private static let counter = AtomicCounter()

    package static func newName() -> String {
        let n = counter.next()
        let rnd = cshim_random_u64()
        return "\(ContentStore.tempPrefix)\(ProcessIdentity.pid).\(ProcessIdentity.startTicks)-\(n)-\(String(rnd, radix: 36))"
    }

    /// Whether `name` is a temporary file of ours whose writer is gone.
    /// Names of older versions (`<pid>-<n>-<random>`) carry only a pid:
    /// they are stale when no process has that pid.
    package static func isStale(_ name: String) -> Bool {
        guard name.hasPrefix(ContentStore.tempPrefix) else { return false }
        let owner = name.dropFirst(ContentStore.tempPrefix.count).prefix { $0 != "-" }
        let parts = owner.split(separator: ".", omittingEmptySubsequences: false)
        guard let pid = Int32(parts[0]), pid > 0 else { return false }
        // Without /proc nothing can be told about other processes: keep all.
        guard ProcessIdentity.startTicks != 0 else { return false }
        if parts.count == 2 {
            guard let start = UInt64(parts[1]) else { return false }
            return !ProcessIdentity.isAlive(pid: pid, startTicks: start)
        }
        return parts.count == 1 && pid != ProcessIdentity.pid && cshim_process_start_ticks(pid) == 0
    }

    /// Removes stale temporary files of ours from the open directory
    /// `dirfd`; returns how many.
    @discardableResult
    package static func sweep(_ dirfd: Int32, what: String) throws -> Int {
        var removed = 0
        for name in try Sys.namesAt(dirfd, what: what) where isStale(name) {
            // Best effort: whoever can write the directory can plant such a
            // name (as a directory, say); that must not stop the restore.
            if (try? Sys.unlinkAt(dirfd, name, what: what + "/" + name)) != nil { removed += 1 }
        }
        return removed
    }
}
