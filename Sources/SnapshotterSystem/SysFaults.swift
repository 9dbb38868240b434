#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The system calls (and the LMDB commit) a test can make fail.
package enum SysOp: String, Sendable, CaseIterable {
    case open, openat, read, pread, write, pwrite, fsync, syncfs, fstat, stat, lstat, lseek
    case rename, renameat, link, linkat, unlink, unlinkat, mkdir, mkdirat
    case fchmod, fchown, futimens, utimensat, ftruncate, fallocate
    case copyFileRange, ficlone, statvfs, flock
    /// `mdb_txn_commit`: LMDB returns the errno of its failed write or sync.
    case metadataCommit
}

extension Sys {
    /// Fault injection for tests (docs/design-notes.md, "Fault injection").
    /// A wrapper asks `Sys.injected(op, what)` before its system call; when a
    /// rule matches, errno is set and the wrapper handles it exactly as a
    /// real failure (EINTR is retried, EEXIST and ENOENT keep their meaning).
    /// A rule only matches calls whose description (the path or paths the
    /// wrapper names in its errors) contains `scope`: a test scopes its
    /// rules to its own temporary directory, so suites running in parallel
    /// never see them, whichever thread runs the call.
    package enum Faults {
        package struct Rule: Sendable {
            package var op: SysOp
            package var errno: Int32
            /// A substring of the call's description; "" matches every call.
            package var scope: String
            /// The first matching call (1-based) that fails ...
            package var nth: Int = 1
            /// ... and how many matching calls from it fail (Int.max: all).
            package var times: Int = 1
        }

        private struct Entry {
            var id: UInt64
            var rule: Rule
            var seen = 0
            var fired = 0
        }

        /// How many rules are installed: the one load production pays.
        package static let armed = Atomic<Int>(0)
        private static let table = Locked<(next: UInt64, entries: [Entry])>((0, []))

        /// Installs a rule; returns its id for `fired` and `remove`.
        package static func install(_ rule: Rule) -> UInt64 {
            table.withLock { t in
                t.next += 1
                t.entries.append(Entry(id: t.next, rule: rule))
                armed.store(t.entries.count, ordering: .relaxed)
                return t.next
            }
        }

        /// Removes a rule; returns how many calls it failed.
        @discardableResult
        package static func remove(_ id: UInt64) -> Int {
            table.withLock { t in
                let fired = t.entries.first { $0.id == id }?.fired ?? 0
                t.entries.removeAll { $0.id == id }
                armed.store(t.entries.count, ordering: .relaxed)
                return fired
            }
        }

        /// How many calls the rule has failed so far.
        package static func fired(_ id: UInt64) -> Int {
            table.withLock { t in t.entries.first { $0.id == id }?.fired ?? 0 }
        }

        /// The errno the first matching rule fails this call with, if any.
        package static func match(_ op: SysOp, _ what: String) -> Int32? {
            table.withLock { t in
                var result: Int32?
                for i in t.entries.indices where t.entries[i].rule.op == op {
                    let rule = t.entries[i].rule
                    guard rule.scope.isEmpty || what.contains(rule.scope) else { continue }
                    t.entries[i].seen += 1
                    let seen = t.entries[i].seen
                    if result == nil, seen >= rule.nth, seen - rule.nth < rule.times {
                        t.entries[i].fired += 1
                        result = rule.errno
                    }
                }
                return result
            }
        }
    }

    /// True (with errno set) when a test's rule fails this call. Costs one
    /// relaxed load when no rule is installed; `what` is built only then.
    @inline(__always)
    package static func injected(_ op: SysOp, _ what: @autoclosure () -> String) -> Bool {
        guard Faults.armed.load(ordering: .relaxed) != 0, let e = Faults.match(op, what()) else { return false }
        Glibc.errno = e
        return true
    }
}
