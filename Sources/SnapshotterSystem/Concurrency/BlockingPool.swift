#if canImport(Glibc)
import Glibc
#endif
import CShim
import Synchronization

/// A fixed set of threads for blocking file I/O and LMDB transactions.
/// Swift's cooperative pool has one thread per core (two here) and must
/// never block; Dispatch's global queues throttle blocking work on small
/// machines. Jobs run in submission order.
package final class BlockingPool: @unchecked Sendable {
    /// Guards the queue and `head`.
    private let gate = Gate()
    private var queue: [() -> Void] = []
    private var head = 0
    private var threads: [pthread_t] = []
    package let size: Int

    /// The fork generation the threads belong to (see `Fork`).
    package let generation = Fork.generation

    private static let sharedSlot = ForkSafeLock<BlockingPool?>(nil)

    /// Shared by every store in the process. A forked child has none of
    /// its parent's pool threads: it gets a pool of its own on first use.
    package static var shared: BlockingPool {
        let generation = Fork.generation
        return sharedSlot.withLock { slot in
            if let pool = slot, pool.generation == generation { return pool }
            let pool = BlockingPool(threads: max(8, 4 * Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
            slot = pool
            return pool
        }
    }

    package init(threads count: Int) {
        size = count
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

    /// The pool lives as long as the process (or fork generation): its
    /// threads never stop.
    private func work() {
        while true { nextJob()() }
    }

    /// The next job, waiting for one.
    private func nextJob() -> () -> Void {
        gate.locked {
            _ = gate.wait(until: { head < queue.count })
            let job = queue[head]
            // Not kept in the queue once taken: a job's captures (at many
            // files, arrays of tens of MB) go when it has run.
            queue[head] = {}
            head += 1
            if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            return job
        }
    }

    package func submit(_ job: @escaping () -> Void) {
        gate.locked {
            queue.append(job)
            gate.signal()
        }
    }

    /// Runs `body` on a pool thread and returns its result to the caller's
    /// task without blocking the cooperative pool.
    package func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, Error>) in
            submit {
                do { cont.resume(returning: try body()) } catch { cont.resume(throwing: error) }
            }
        }
    }
}

/// Library threads for callers outside the engine (the C ABI runs host
/// callbacks here rather than on Swift's cooperative threads).
public enum LibraryThreads {
    public static func run(_ job: @escaping @Sendable () -> Void) {
        BlockingPool.shared.submit(job)
    }
}
