import Synchronization

/// Lets a test see what is fsynced (Sys.fsync reports here). Costs one
/// atomic load per fsync while nobody watches.
package enum SyncProbe {
    private static let watching = Atomic<Int>(0)
    private static let nextID = Atomic<UInt64>(0)
    private static let watchers = Locked<[UInt64: @Sendable (String) -> Void]>([:])

    package static func note(_ what: String) {
        guard watching.load(ordering: .relaxed) > 0 else { return }
        for w in watchers.withLock({ Array($0.values) }) { w(what) }
    }

    /// Calls `body` with the name of every file fsynced until `unwatch`.
    package static func watch(_ body: @escaping @Sendable (String) -> Void) -> UInt64 {
        let id = nextID.add(1, ordering: .relaxed).oldValue
        watchers.withLock { $0[id] = body }
        watching.add(1, ordering: .relaxed)
        return id
    }

    package static func unwatch(_ id: UInt64) {
        if watchers.withLock({ $0.removeValue(forKey: id) }) != nil { watching.subtract(1, ordering: .relaxed) }
    }
}
