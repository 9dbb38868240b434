import CSnapshotterABI
import SnapshotterCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Every handle given to C is registered here, so a freed or foreign
/// pointer is detected instead of dereferenced.
enum Handles {
    /// Fork-safe: a child forked while another thread held it can still
    /// look handles up (and refuse them).
    private static let live = ForkSafeLock<[UInt: ObjectIdentifier]>([:])

    static func register<T: AnyObject>(_ object: T) -> OpaquePointer {
        let raw = Unmanaged.passRetained(object).toOpaque()
        live.withLock { $0[UInt(bitPattern: raw)] = ObjectIdentifier(T.self) }
        return OpaquePointer(raw)
    }

    /// The object behind a handle, or nil when it is NULL, freed, foreign
    /// or of another kind. The caller's reference is taken under the lock
    /// that `remove` takes, so a free racing this call cannot release the
    /// object before the call holds it: the call then runs on a live (if
    /// closed) object and the free completes after it lets go.
    static func lookup<T: AnyObject>(_ p: OpaquePointer?, as: T.Type) -> T? {
        guard let p else { return nil }
        let raw = UnsafeMutableRawPointer(p)
        return live.withLock {
            guard $0[UInt(bitPattern: raw)] == ObjectIdentifier(T.self) else { return nil }
            return Unmanaged<T>.fromOpaque(raw).takeUnretainedValue()
        }
    }

    /// Unregisters and releases; returns the object (retained by the
    /// caller's reference) or nil when the handle was not live.
    static func remove<T: AnyObject>(_ p: OpaquePointer?, as: T.Type) -> T? {
        guard let p else { return nil }
        let raw = UnsafeMutableRawPointer(p)
        let ok = live.withLock { $0.removeValue(forKey: UInt(bitPattern: raw)) == ObjectIdentifier(T.self) }
        guard ok else { return nil }
        return Unmanaged<T>.fromOpaque(raw).takeRetainedValue()
    }

    static func require<T: AnyObject>(_ p: OpaquePointer?, _ type: T.Type, _ what: String) throws -> T {
        guard p != nil else { throw SnapshotterError(.invalidArgument, "\(what) handle is NULL") }
        guard let o = lookup(p, as: type) else {
            throw SnapshotterError(.invalidArgument, "\(what) handle is invalid or already freed")
        }
        if isForked(o) { throw SnapshotterError(.forked, forkedMessage(what)) }
        return o
    }

    /// Whether `o` is a store or operation of the process this one was
    /// forked from: its threads and LMDB environment are not this
    /// process's to use (class casts only: no runtime lock in a child).
    static func isForked(_ o: AnyObject) -> Bool {
        if let s = o as? StoreHandle { return s.generation != Fork.generation }
        if let op = o as? OpHandle { return op.store.generation != Fork.generation }
        return false
    }

    static func forkedMessage(_ what: String) -> String {
        "the \(what) handle was opened in another process (this one was forked from it): open a new store in this process"
    }

    /// Releases a forked handle without running any of its teardown: the
    /// parent's threads, LMDB environment and locks must not be touched.
    static func abandon(_ o: AnyObject) {
        _ = Unmanaged.passRetained(o)
    }
}

/// Options set one number at a time.
final class OptionsHandle {
    var store = StoreOptions()
    /// Registry settings as set; an empty endpoint means no registry.
    var registry = RegistrySettings(endpoint: "")
    /// Content settings as set; an empty URL means no content transport.
    var content = ContentSettings(url: "")

    /// The store options with the registry and content filled in when set.
    func resolved() throws -> StoreOptions {
        var o = store
        o.registry = registry.endpoint.isEmpty ? nil : registry
        // A Dragonfly endpoint alone is kept: the object storage may come
        // per call, and a call that needs content without it fails then.
        o.content = content.url.isEmpty && content.dragonflyEndpoint.isEmpty ? nil : content
        return o
    }
}

final class FilesHandle {
    var files: [FileRequest] = []
}

/// An open store.
final class StoreHandle: @unchecked Sendable {
    let engine: Snapshotter
    /// The fork generation (see `Fork`) of the process that opened it.
    let generation = Fork.generation
    private let gate = Gate()
    private var running: [ObjectIdentifier: OpHandle] = [:]
    private var closing = false

    init(engine: Snapshotter) { self.engine = engine }

    func track(_ op: OpHandle) throws {
        try gate.locked {
            if closing { throw SnapshotterError(.closed, "the store at \(engine.root) is closed") }
            running[ObjectIdentifier(op)] = op
        }
    }

    /// Operations started and not yet finished (done callback included).
    var runningCount: Int { gate.locked { running.count } }

    func untrack(_ op: OpHandle) {
        gate.locked { _ = running.removeValue(forKey: ObjectIdentifier(op)) }
    }

    /// Cancels what runs and waits for each operation's done callback.
    func close() {
        let ops: [OpHandle] = gate.locked {
            closing = true
            return Array(running.values)
        }
        for op in ops { op.cancel.cancel() }
        for op in ops { _ = op.wait(timeoutMs: -1) }
        blockOn { await self.engine.close() }
    }
}

/// The raw host pointer and callbacks, carried across threads.
struct HostCallbacks: @unchecked Sendable {
    var progress: snapshotter_progress_cb?
    var done: snapshotter_done_cb?
    var payload: UnsafeMutableRawPointer?
}

/// `blockOn` for a throwing body.
func blockOnThrowing<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let r: Result<T, SnapshotterError> = blockOn {
        do { return .success(try await body()) } catch { return .failure(error.asStatusError) }
    }
    return try r.get()
}
