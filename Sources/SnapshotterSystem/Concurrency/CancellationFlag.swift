import Synchronization

/// A cancellation flag shared between an operation's task and the pool
/// threads doing its work (which cannot see Swift task cancellation).
public final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func cancel() { flag.store(true, ordering: .relaxed) }
    public var isCanceled: Bool { flag.load(ordering: .relaxed) }
    package func check() throws { if isCanceled { throw SnapshotterError.canceled } }
}
