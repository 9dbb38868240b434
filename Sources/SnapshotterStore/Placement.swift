import SnapshotterSystem

/// How far a batch's barrier has got renaming its content into place, for
/// a commit that runs beside it (docs/design-notes.md, "A local commit runs
/// beside the barrier's renames"). Whoever unlinks content does it holding
/// the metadata writer lock, so a content file renamed after the commit
/// took that lock is still there when the commit ends: the commit need not
/// look for it on disk. The barrier reports each rename before it starts
/// it; the commit asks which had started when it took the lock.
package final class Placement: @unchecked Sendable {
    /// Guards everything below.
    private let gate = Gate()
    /// Content renames of the batch.
    private var total = 0
    /// Renames started (the next one's ordinal).
    private var begun = 0
    private var started = false
    /// The rename the commit waits to end, if it does.
    private var awaited: Int?
    private var outcome: Result<Set<Digest>, Error>?

    /// Test only: runs as each rename is about to start, and as the commit
    /// is about to wait for a rename under way; outside the lock.
    private let beforeRename: (@Sendable (Int) -> Void)?
    private let beforeWait: (@Sendable (Int) -> Void)?

    package init(beforeRename: (@Sendable (Int) -> Void)? = nil, beforeWait: (@Sendable (Int) -> Void)? = nil) {
        self.beforeRename = beforeRename
        self.beforeWait = beforeWait
    }

    /// What the commit knows once it holds the writer lock: the content
    /// renamed from then on.
    package struct UnderLock: Sendable {
        fileprivate var placement: Placement
        fileprivate var from: Int

        /// Whether the batch's content rename `ordinal` (see
        /// `DurableBatch.deferContent`; negative: none) started after the
        /// lock was taken: that content is there when the commit ends,
        /// which waits for the barrier. Otherwise that rename has ended when
        /// this returns (the one under way when the lock was taken is
        /// waited for), so a look at the content sees what it did.
        package func placed(ordinal: Int) -> Bool {
            guard ordinal >= 0 else { return false }
            if ordinal >= from { return true }
            if ordinal == from - 1 { placement.waitRenamed(ordinal) }
            return false
        }
    }

    // MARK: The barrier's side

    /// The `total` content renames are about to start.
    func start(total: Int) {
        gate.locked {
            self.total = total
            started = true
            gate.broadcast()
        }
    }

    /// Rename `ordinal` starts now.
    func beginning(_ ordinal: Int) {
        gate.locked {
            begun = ordinal
            // The commit waits for half, or for the rename before this one;
            // no wake-up at every rename (each would cost it a switch).
            if ordinal == (total + 1) / 2 || awaited.map({ ordinal > $0 }) == true { gate.broadcast() }
        }
        beforeRename?(ordinal)
    }

    /// The barrier ended: the digests someone else placed first, or why it
    /// failed.
    package func end(_ result: Result<Set<Digest>, Error>) {
        gate.locked {
            outcome = result
            gate.broadcast()
        }
    }

    // MARK: The commit's side

    /// Waits until half of the content is renamed or the barrier ended.
    /// The commit then takes the writer lock: its own work overlaps the
    /// other half of the renames, and it does not hold the lock through
    /// the first half.
    package func waitForHalf() {
        gate.locked {
            _ = gate.wait(until: { outcome != nil || (started && begun >= (total + 1) / 2) })
        }
    }

    /// Called holding the writer lock: the renames starting from now.
    package func lockTaken() -> UnderLock {
        gate.locked {
            // Before the renames started (or after they ended) none is
            // known to happen under the lock.
            guard outcome == nil, started else { return UnderLock(placement: self, from: Int.max) }
            return UnderLock(placement: self, from: begun + 1)
        }
    }

    /// Waits until rename `ordinal` ended: the next one started, or the
    /// barrier ended.
    private func waitRenamed(_ ordinal: Int) {
        beforeWait?(ordinal)
        gate.locked {
            awaited = ordinal
            _ = gate.wait(until: { outcome != nil || begun > ordinal })
            awaited = nil
        }
    }

    /// Waits for the barrier to end; rethrows its error, else returns the
    /// digests someone else placed first. Any number of calls.
    @discardableResult
    package func finish() throws -> Set<Digest> {
        try gate.locked {
            _ = gate.wait(until: { outcome != nil })
            guard let outcome else { throw SnapshotterError(.internal, "the barrier ended without an outcome") }
            return try outcome.get()
        }
    }
}
