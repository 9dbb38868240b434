#if canImport(Glibc)
import Glibc
#endif

/// A mutex and condition variable, for threads that must block (the pool
/// threads, C threads waiting on an operation). Both live in
/// allocated memory: pthread objects need a stable address, which a Swift
/// stored property passed as `&property` is not promised to have.
package final class Gate: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    package init() {
        mutex.initialize(to: pthread_mutex_t())
        cond.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    package func locked<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    package func broadcast() { pthread_cond_broadcast(cond) }

    package func signal() { pthread_cond_signal(cond) }

    /// Waits (with the mutex held by the caller through `locked`) until
    /// `done()` or the deadline (none when negative); returns whether
    /// `done()` became true.
    package func wait(until done: () -> Bool, timeoutMs: Int64 = -1) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nowNs = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        // A timeout too long to represent is as good as none (no trap on
        // what C passes in).
        let (timeoutNs, o1) = timeoutMs.multipliedReportingOverflow(by: 1_000_000)
        let (deadlineNs, o2) = nowNs.addingReportingOverflow(timeoutNs)
        if timeoutMs < 0 || o1 || o2 {
            while !done() { pthread_cond_wait(cond, mutex) }
            return true
        }
        var deadline = timespec(tv_sec: Int(deadlineNs / 1_000_000_000), tv_nsec: Int(deadlineNs % 1_000_000_000))
        while !done() {
            if pthread_cond_timedwait(cond, mutex, &deadline) == ETIMEDOUT { return done() }
        }
        return true
    }
}
