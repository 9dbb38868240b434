/// Counts permits for async tasks: `acquire` waits (without holding a
/// thread) until one is free.
package final class AsyncSemaphore: Sendable {
    private let state: Locked<(free: Int, waiters: [CheckedContinuation<Void, Never>])>

    package init(_ permits: Int) { state = Locked((permits, [])) }

    package func acquire() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let go = state.withLock { s -> Bool in
                if s.free > 0 { s.free -= 1; return true }
                s.waiters.append(c)
                return false
            }
            if go { c.resume() }
        }
    }

    package func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty { s.free += 1; return nil }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}
