#if canImport(Glibc)
import Glibc
#endif
import CShim
import Synchronization

/// A fixed set of threads for blocking file I/O and LMDB transactions.
/// Swift's cooperative pool has one thread per core (two here) and must
/// never block; Dispatch's global queues throttle blocking work on small
/// machines. Jobs run in submission order.
final class BlockingPool: @unchecked Sendable {
    // Allocated: pthread objects need a stable address, which a Swift
    // stored property passed as `&property` is not promised to have.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue: [() -> Void] = []
    private var head = 0
    private var stopping = false
    private var threads: [pthread_t] = []
    let size: Int

    /// The fork generation the threads belong to (see `Fork`).
    let generation = Fork.generation

    private static let sharedSlot = ForkSafeLock<BlockingPool?>(nil)

    /// Shared by every store in the process. A forked child has none of
    /// its parent's pool threads: it gets a pool of its own on first use.
    static var shared: BlockingPool {
        let generation = Fork.generation
        return sharedSlot.withLock { slot in
            if let pool = slot, pool.generation == generation { return pool }
            let pool = BlockingPool(threads: max(8, 4 * Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
            slot = pool
            return pool
        }
    }

    init(threads count: Int) {
        size = count
        mutex.initialize(to: pthread_mutex_t())
        cond.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
        for _ in 0..<count {
            var tid = pthread_t()
            let box = Unmanaged.passRetained(self).toOpaque()
            let rc = pthread_create(&tid, nil, { arg in
                let pool = Unmanaged<BlockingPool>.fromOpaque(arg!).takeRetainedValue()
                // Named, so a host's thread list shows whose they are.
                cshim_set_thread_name("snapshotter-io")
                pool.work()
                return nil
            }, box)
            if rc == 0 {
                pthread_detach(tid)
                threads.append(tid)
            } else {
                Unmanaged<BlockingPool>.fromOpaque(box).release()
            }
        }
    }

    private func work() {
        while true {
            pthread_mutex_lock(mutex)
            while head == queue.count && !stopping {
                pthread_cond_wait(cond, mutex)
            }
            if head == queue.count && stopping {
                pthread_mutex_unlock(mutex)
                return
            }
            let job = queue[head]
            head += 1
            if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            pthread_mutex_unlock(mutex)
            job()
        }
    }

    func submit(_ job: @escaping () -> Void) {
        pthread_mutex_lock(mutex)
        queue.append(job)
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }

    /// Runs `body` on a pool thread and returns its result to the caller's
    /// task without blocking the cooperative pool.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, Error>) in
            submit {
                do { cont.resume(returning: try body()) } catch { cont.resume(throwing: error) }
            }
        }
    }
}

/// A cancellation flag shared between an operation's task and the pool
/// threads doing its work (which cannot see Swift task cancellation).
public final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func cancel() { flag.store(true, ordering: .relaxed) }
    public var isCanceled: Bool { flag.load(ordering: .relaxed) }
    func check() throws { if isCanceled { throw SnapshotterError.canceled } }
}

/// Runs `body` for each item with at most `limit` at once on the blocking
/// pool; the first error cancels the rest and is rethrown. Each worker owns
/// one I/O buffer of `bufferSize` bytes, handed to every call it makes.
func forEachConcurrently<Item: Sendable>(
    _ items: [Item], limit: Int, pool: BlockingPool, cancel: CancellationFlag,
    bufferSize: Int = SPF1.chunkSize,
    _ body: @escaping @Sendable (Item, UnsafeMutableRawBufferPointer) throws -> Void
) async throws {
    if items.isEmpty { return }
    let width = max(1, min(limit, items.count))
    let next = AtomicCounter()
    let firstError = Locked<SnapshotterError?>(nil)
    let localCancel = cancel
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<width {
            group.addTask {
                try await pool.run {
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 4096)
                    defer { buffer.deallocate() }
                    while true {
                        if localCancel.isCanceled || firstError.withLock({ $0 != nil }) { return }
                        let i = next.next()
                        if i >= items.count { return }
                        do {
                            try body(items[i], buffer)
                        } catch {
                            let e = error.asSnapshotterError
                            firstError.withLock { if $0 == nil { $0 = e } }
                            return
                        }
                    }
                }
            }
        }
        try await group.waitForAll()
    }
    if let e = firstError.withLock({ $0 }) { throw e }
    try cancel.check()
}

/// A value behind a mutex, shareable by reference across tasks and threads
/// (`Mutex` itself cannot be captured by escaping closures). A pthread
/// mutex rather than `Synchronization.Mutex`: ThreadSanitizer sees it (the
/// toolchain's Mutex locks in code TSan does not instrument, so every value
/// it guards was reported as racing).
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @discardableResult
    func withLock<R>(_ body: (inout sending Value) throws -> sending R) rethrows -> sending R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }

    /// Runs `body` holding the lock only if it is free right now (nil when
    /// it is not); for a lock that guards a section, not the value.
    func ifAvailable<R>(_ body: () throws -> R) rethrows -> R? {
        guard pthread_mutex_trylock(mutex) == 0 else { return nil }
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// A shared counter handing out 0, 1, 2, ...
final class AtomicCounter: Sendable {
    private let value = Atomic<Int>(0)
    func next() -> Int { value.add(1, ordering: .relaxed).oldValue }
    func add(_ n: Int) { value.add(n, ordering: .relaxed) }
    var current: Int { value.load(ordering: .relaxed) }
}

/// Library threads for callers outside the engine (the C ABI runs host
/// callbacks here rather than on Swift's cooperative threads).
public enum LibraryThreads {
    public static func run(_ job: @escaping @Sendable () -> Void) {
        BlockingPool.shared.submit(job)
    }
}
