#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

/// An open snapshot store: the engine's facade. Many tasks may use one store
/// at once, and several processes may open the same root; blocking work runs
/// on the blocking pool, never on Swift's cooperative threads.
public final class Snapshotter: Sendable {
    public let root: String
    public let options: StoreOptions
    let store: ContentStore
    let meta: MetadataStore
    let pool: BlockingPool

    private struct Operations {
        var closed = false
        var next: UInt64 = 0
        var active: [UInt64: CancellationFlag] = [:]
    }
    private let operations = Locked(Operations())
    private let collector = Locked<Task<Void, Never>?>(nil)
    private let registrySlot: Locked<(any MetadataRegistry)?>

    /// The registry snapshots are published to and fetched from, if any.
    var registry: (any MetadataRegistry)? { registrySlot.withLock { $0 } }

    /// Changes the registry for the calls that start after this one (the
    /// Go API's per-call options do this).
    public func setRegistry(_ settings: RegistrySettings?) throws {
        let r = try settings.map { try makeRegistry($0, maxConfigBytes: options.maxConfigBytes) }
        registrySlot.withLock { $0 = r }
    }

    private let transportSlot: Locked<(any ContentTransport)?>
    let downloads = SingleFlight()

    /// The content transport, if any.
    var transport: (any ContentTransport)? { transportSlot.withLock { $0 } }

    /// Changes the content transport for the calls that start after this one.
    public func setContent(_ settings: ContentSettings?) throws {
        let t = try settings.map(makeTransport)
        transportSlot.withLock { $0 = t }
    }

    /// Opens (creating if needed) the store under `root`.
    public init(root: String, options: StoreOptions = StoreOptions()) throws {
        guard !root.isEmpty else { throw SnapshotterError.invalid("root directory is empty") }
        guard options.snapshotConcurrency > 0, options.restoreConcurrency > 0 else {
            throw SnapshotterError.invalid("concurrency must be at least 1")
        }
        let permissions = StorePermissions(group: options.storeGroup.map { gid_t($0) })
        // A root we create gets the store's mode; an existing one (given by
        // the user) is left as it is: the layout inside is ours.
        let created = try Sys.lstatIfExists(root) == nil
        try Sys.mkdirs(root, mode: permissions.directoryMode)
        if created { try permissions.ownDirectory(root) }
        self.root = try Sys.realpath(root)
        self.options = options
        self.registrySlot = Locked(try options.registry.map { try makeRegistry($0, maxConfigBytes: options.maxConfigBytes) })
        self.transportSlot = Locked(try options.content.map(makeTransport))
        self.pool = BlockingPool.shared
        self.store = try ContentStore(root: self.root, permissions: permissions)
        self.meta = try MetadataStore(directory: self.root + "/metadata", mapSize: options.metadataMapSize, permissions: permissions)
        try emptyTrash()
        startCollector()
    }

    /// The background collector: every interval, one collection with the
    /// store's policy. It holds the store weakly and stops at close.
    private func startCollector() {
        let interval = options.gc.intervalSeconds
        guard interval > 0 else { return }
        let task = Task.detached(priority: .background) { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: UInt64(Int64.nanos(seconds: interval)))
                guard !Task.isCancelled, let store = self else { return }
                do {
                    _ = try await store.gc()
                } catch let e as SnapshotterError where e.code == .closed || e.code == .canceled {
                    return
                } catch {
                    Log.error("gc \(store.root): \(error.asSnapshotterError.message)")
                }
            }
        }
        collector.withLock { $0 = task }
    }

    /// Opens a store without blocking the caller's cooperative thread.
    public static func open(root: String, options: StoreOptions = StoreOptions()) async throws -> Snapshotter {
        try await BlockingPool.shared.run { try Snapshotter(root: root, options: options) }
    }

    /// Refuses new operations, cancels those in flight and waits for them.
    public func close() async {
        collector.withLock { $0?.cancel(); $0 = nil }
        let flags = operations.withLock { ops -> [CancellationFlag] in
            ops.closed = true
            return Array(ops.active.values)
        }
        flags.forEach { $0.cancel() }
        while operations.withLock({ !$0.active.isEmpty }) {
            try? await Task.sleep(nanoseconds: 1_000_000)
        }
    }

    /// Operations currently running on this store.
    public var activeOperations: Int { operations.withLock { $0.active.count } }

    /// Runs `body` as a tracked operation: refused after close, canceled by
    /// task cancellation, by `cancel`, or by close.
    func operation<T: Sendable>(_ cancel: CancellationFlag?, _ body: (CancellationFlag) async throws -> T) async throws -> T {
        let flag = cancel ?? CancellationFlag()
        let id = try operations.withLock { ops -> UInt64 in
            if ops.closed { throw SnapshotterError(.closed, "the store at \(root) is closed") }
            ops.next += 1
            ops.active[ops.next] = flag
            return ops.next
        }
        defer {
            _ = operations.withLock { $0.active.removeValue(forKey: id) }
            // The map's pages this operation read stay in the page cache,
            // not in the caller's resident memory.
            meta.releaseMapPages()
        }
        do {
            return try await withTaskCancellationHandler {
                try flag.check()
                return try await body(flag)
            } onCancel: {
                flag.cancel()
            }
        } catch {
            if flag.isCanceled { throw SnapshotterError.canceled }
            throw error.asSnapshotterError
        }
    }
}
