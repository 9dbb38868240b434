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
