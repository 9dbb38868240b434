/// Runs an async body to completion from a C thread (never a cooperative
/// one: C threads and library I/O threads only).
package func blockOn<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let gate = Gate()
    let box = ResultBox<T>()
    Task.detached {
        let v = await body()
        gate.locked {
            box.value = v
            gate.broadcast()
        }
    }
    return gate.locked {
        _ = gate.wait(until: { box.value != nil }, timeoutMs: -1)
        // Set before the broadcast that ended the wait.
        return box.value!
    }
}

private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
