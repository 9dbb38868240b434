import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote
/// Runs `body` for each item with at most `limit` at once on the blocking
/// pool; the first error cancels the rest and is rethrown. Each worker owns
/// one I/O buffer of `bufferSize` bytes, handed to every call it makes.
func forEachConcurrently<Item: Sendable>(
    _ items: [Item], limit: Int, pool: BlockingPool, cancel: CancellationFlag,
    bufferSize: Int = SPF1.chunkSize,
    _ body: @escaping @Sendable (Item, UnsafeMutableRawBufferPointer) throws -> Void
) async throws {
    try await forEachIndexConcurrently(items.count, limit: limit, pool: pool, cancel: cancel, bufferSize: bufferSize) { i, buffer in
        try body(items[i], buffer)
    }
}

/// `forEachConcurrently` of the indices `0..<count`. With `spread`, the
/// indices are cut into one lane per worker and taken from the lanes in
/// turn, so the calls running at once are far apart in the order (for a
/// restore of files grouped by directory: in different directories, not
/// all waiting on one directory's lock).
func forEachIndexConcurrently(
    _ count: Int, limit: Int, pool: BlockingPool, cancel: CancellationFlag,
    bufferSize: Int = SPF1.chunkSize, spread: Bool = false,
    _ body: @escaping @Sendable (Int, UnsafeMutableRawBufferPointer) throws -> Void
) async throws {
    if count <= 0 { return }
    let width = max(1, min(limit, count))
    let order = LaneOrder(count: count, lanes: spread ? width : 1)
    let next = AtomicCounter()
    // Set on the first error: workers stop without taking a lock per item.
    let stop = CancellationFlag()
    let firstError = Locked<SnapshotterError?>(nil)
    let localCancel = cancel
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<width {
            group.addTask {
                try await pool.run {
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 4096)
                    defer { buffer.deallocate() }
                    while !localCancel.isCanceled && !stop.isCanceled {
                        let n = next.next()
                        if n >= order.claims { return }
                        let i = order.index(n)
                        if i >= count { continue }
                        do {
                            try body(i, buffer)
                        } catch {
                            let e = error.asSnapshotterError
                            firstError.withLock { if $0 == nil { $0 = e } }
                            stop.cancel()
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

/// The order of `0..<count` cut into `lanes` lanes of consecutive indices,
/// taken one from each lane in turn: claim `n` (below `claims`) runs index
/// `index(n)`, unless that is `count` or more (a slot of a short last lane).
struct LaneOrder: Sendable {
    let lanes: Int
    let laneLength: Int

    init(count: Int, lanes: Int) {
        self.lanes = max(1, lanes)
        laneLength = count / self.lanes + (count % self.lanes == 0 ? 0 : 1)
    }

    var claims: Int { lanes * laneLength }

    func index(_ n: Int) -> Int { (n % lanes) * laneLength + n / lanes }
}
