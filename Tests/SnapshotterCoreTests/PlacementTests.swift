#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore

/// What a commit beside the barrier trusts without a look: exactly the
/// content whose rename started after it took the writer lock.
@Suite("Placement beside a commit")
struct PlacementTests {
    struct Looked: Sendable { var placed: Bool, there: Bool }
    struct State: Sendable { var taken = false, waiting = false, looked: Looked? }

    /// What the test's threads noted, and waiting for it.
    final class Events: @unchecked Sendable {
        private let gate = Gate()
        private var state = State()

        var value: State { gate.locked { state } }

        func note(_ change: (inout State) -> Void) {
            gate.locked {
                change(&state)
                gate.broadcast()
            }
        }

        func wait(until done: (State) -> Bool) {
            gate.locked { _ = gate.wait(until: { done(state) }) }
        }
    }

    @Test("content renamed after the lock was taken is placed; content renamed before, or being renamed, is looked at")
    func placedAfterLock() async throws {
        try await withFixture { fx in
            let store = try ContentStore(root: fx.root)
            let batch = try DurableBatch(store: store)
            let count = 24
            let ingested = try (0..<count).map { i in
                try StoredLookUpTests.ingest(store, batch, patternBytes(300 + i, seed: UInt64(i)), in: fx.base, "f\(i)")
            }
            #expect(ingested.map(\.renameOrdinal) == (0..<Int32(count)).map { $0 }, "content numbered in the batch's order")
            try Self.placeBeside(store, batch, ingested.map(\.digest))
        }
    }

    /// Runs `batch`'s barrier as a commit beside it would, the lock taken
    /// while rename `half` is about to start.
    static func placeBeside(_ store: ContentStore, _ batch: DurableBatch, _ digests: [Digest]) throws {
        let count = digests.count
        let half = (count + 1) / 2
        // The barrier stops before rename `half` until the lock is
        // "taken" and a look at that content is waiting (or done).
        let events = Events()
        let started = Locked<[Int]>([])
        let placement = Placement(beforeRename: { ordinal in
            started.withLock { $0.append(ordinal) }
            if ordinal == half { events.wait { $0.taken } }
        }, beforeWait: { _ in events.note { $0.waiting = true } })
        BlockingPool.shared.submit { placement.end(Result { try batch.barrier(placement: placement) }) }
        placement.waitForHalf()
        let underLock = placement.lockTaken()
        let before = started.withLock { $0 }
        // Content whose rename is under way when the lock is taken: a
        // look waits for the rename to end, then sees the file.
        let inFlight = digests[half]
        BlockingPool.shared.submit {
            let placed = underLock.placed(ordinal: half)
            let there = (try? store.contentStat(inFlight)) != nil
            events.note { $0.looked = Looked(placed: placed, there: there) }
        }
        events.wait { $0.waiting || $0.looked != nil }
        events.note { $0.taken = true }
        events.wait { $0.looked != nil }
        let looked = events.value.looked
        #expect(looked?.placed == false, "renamed before the lock: looked at")
        #expect(looked?.there == true, "the look waited for the rename under way")
        #expect(events.value.waiting, "the look waited")
        #expect(try placement.finish().isEmpty)
        #expect(started.withLock { $0 } == Array(0..<count), "renamed in order, each reported first")
        #expect(before.allSatisfy { $0 <= half }, "the lock was taken before rename \(half + 1) started")
        // In the batch's order (the order content was deferred).
        for (ordinal, d) in digests.enumerated() {
            #expect(underLock.placed(ordinal: ordinal) == (ordinal > half), "content \(ordinal) of \(count)")
            #expect(try store.contentStat(d) != nil, "content \(ordinal) is in place")
        }
        #expect(!underLock.placed(ordinal: -1), "content the batch does not rename")
        // Asked again, the barrier's outcome is the same.
        #expect(try placement.finish().isEmpty)
    }

    @Test("a barrier that fails wakes the commit and hands it the error")
    func failedBarrier() async throws {
        let placement = Placement()
        BlockingPool.shared.submit { placement.end(.failure(SnapshotterError(.io, "syncfs failed"))) }
        placement.waitForHalf()
        let underLock = placement.lockTaken()
        #expect(!underLock.placed(ordinal: 0) && !underLock.placed(ordinal: -1))
        #expect(throws: SnapshotterError.self) { try placement.finish() }
    }
}
