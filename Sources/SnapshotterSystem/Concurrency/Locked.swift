#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A value behind a mutex, shareable by reference across tasks and threads
/// (`Mutex` itself cannot be captured by escaping closures). A pthread
/// mutex rather than `Synchronization.Mutex`: ThreadSanitizer sees it (the
/// toolchain's Mutex locks in code TSan does not instrument, so every value
/// it guards was reported as racing).
package final class Locked<Value: Sendable>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    package init(_ value: Value) {
        self.value = value
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @discardableResult
    package func withLock<R>(_ body: (inout sending Value) throws -> sending R) rethrows -> sending R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }

    /// The value, moved out (not copied) and replaced by `empty`.
    package func take(leaving empty: sending Value) -> Value {
        withLock { v in
            defer { v = empty }
            return v
        }
    }

    /// Runs `body` holding the lock only if it is free right now (nil when
    /// it is not); for a lock that guards a section, not the value.
    package func ifAvailable<R>(_ body: () throws -> R) rethrows -> R? {
        guard pthread_mutex_trylock(mutex) == 0 else { return nil }
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// A shared counter handing out 0, 1, 2, ...
package final class AtomicCounter: Sendable {
    private let value = Atomic<Int>(0)
    package init() {}
    package func next() -> Int { value.add(1, ordering: .relaxed).oldValue }
    package func add(_ n: Int) { value.add(n, ordering: .relaxed) }
    package var current: Int { value.load(ordering: .relaxed) }
}
