#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// What survives fork(2) and what does not. A forked child has one thread:
/// the pools' threads, the stores' LMDB environments and the lease pid of
/// the parent are not its own. Objects made before a fork record the
/// generation they belong to; the child's generation is one more, so they
/// are told apart by a load, without a system call.
public enum Fork {
    private static let counter = Atomic<Int>(0)

    /// Incremented in every forked child (pthread_atfork).
    public static var generation: Int {
        _ = handlersInstalled
        return counter.load(ordering: .acquiring)
    }

    /// Locks taken before fork and released on both sides, so no lock of
    /// ours is held in the child by a thread that does not exist there.
    nonisolated(unsafe) private static var locks: [UnsafeMutablePointer<pthread_mutex_t>] = []
    nonisolated(unsafe) private static let registry: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        m.initialize(to: pthread_mutex_t())
        pthread_mutex_init(m, nil)
        return m
    }()

    private static let handlersInstalled: Bool = {
        _ = registry
        pthread_atfork({
            pthread_mutex_lock(Fork.registry)
            for m in Fork.locks { pthread_mutex_lock(m) }
        }, {
            for m in Fork.locks.reversed() { pthread_mutex_unlock(m) }
            pthread_mutex_unlock(Fork.registry)
        }, {
            Fork.counter.add(1, ordering: .releasing)
            for m in Fork.locks.reversed() { pthread_mutex_unlock(m) }
            pthread_mutex_unlock(Fork.registry)
        })
        return true
    }()

    /// Adds a mutex to those held across fork; it must live for good.
    package static func register(_ m: UnsafeMutablePointer<pthread_mutex_t>) {
        _ = handlersInstalled
        pthread_mutex_lock(registry)
        locks.append(m)
        pthread_mutex_unlock(registry)
    }
}

/// A value behind a mutex that fork(2) cannot leave locked in the child.
/// For the few process-wide tables (handles, the shared pool); the lock is
/// never freed.
public final class ForkSafeLock<Value>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        Fork.register(mutex)
    }

    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
