#if canImport(Glibc)
import Glibc
#endif
import CShim

/// The pid and start time older versions judge a lease by; still written
/// in the key, so a collector of an older version sharing the root keeps
/// honouring our leases (as far as it can see our pid).
package enum ProcessIdentity {
    // Read again in a forked child: its leases must name it, not the parent.
    private static let cached = ForkSafeLock<(generation: Int, pid: Int32, start: UInt64)?>(nil)
    private static var current: (generation: Int, pid: Int32, start: UInt64) {
        let g = Fork.generation
        return cached.withLock { c in
            if let c, c.generation == g { return c }
            let now = (generation: g, pid: getpid(), start: cshim_process_start_ticks(getpid()))
            c = now
            return now
        }
    }
    package static var pid: Int32 { current.pid }
    package static var startTicks: UInt64 { current.start }

    /// Whether the process a lease names still runs (same pid, same start).
    /// Meaningful only in the PID namespace of the holder.
    package static func isAlive(pid: Int32, startTicks: UInt64) -> Bool {
        if pid == Self.pid { return startTicks == Self.startTicks }
        let now = cshim_process_start_ticks(pid)
        return now != 0 && now == startTicks
    }
}
