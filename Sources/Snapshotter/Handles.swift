import CSnapshotterABI
import SnapshotterCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Every handle given to C is registered here, so a freed or foreign
/// pointer is detected instead of dereferenced.
enum Handles {
    private static let live = Mutex<[UInt: ObjectIdentifier]>([:])

    static func register<T: AnyObject>(_ object: T) -> OpaquePointer {
        let raw = Unmanaged.passRetained(object).toOpaque()
        live.withLock { $0[UInt(bitPattern: raw)] = ObjectIdentifier(T.self) }
        return OpaquePointer(raw)
    }

    /// The object behind a handle, or nil when it is NULL, freed, foreign
    /// or of another kind.
    static func lookup<T: AnyObject>(_ p: OpaquePointer?, as: T.Type) -> T? {
        guard let p else { return nil }
        let raw = UnsafeMutableRawPointer(p)
        let ok = live.withLock { $0[UInt(bitPattern: raw)] == ObjectIdentifier(T.self) }
        guard ok else { return nil }
        return Unmanaged<T>.fromOpaque(raw).takeUnretainedValue()
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
        return o
    }
}

/// A mutex and condition variable for blocking C threads.
final class Gate: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()

    init() {
        pthread_mutex_init(&mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(&cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
    }

    func locked<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }

    func broadcast() { pthread_cond_broadcast(&cond) }

    /// Waits (with the mutex held by the caller through `locked`) until
    /// `done()` or the deadline; returns whether `done()` became true.
    func wait(until done: () -> Bool, timeoutMs: Int64) -> Bool {
        if timeoutMs < 0 {
            while !done() { pthread_cond_wait(&cond, &mutex) }
            return true
        }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let deadlineNs = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec) + timeoutMs * 1_000_000
        var deadline = timespec(tv_sec: Int(deadlineNs / 1_000_000_000), tv_nsec: Int(deadlineNs % 1_000_000_000))
        while !done() {
            if pthread_cond_timedwait(&cond, &mutex, &deadline) == ETIMEDOUT { return done() }
        }
        return true
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
        if content.url.isEmpty && !content.dragonflyEndpoint.isEmpty {
            throw SnapshotterError(.invalidArgument, "Dragonfly endpoint \(content.dragonflyEndpoint.debugDescription) needs the object storage behind it: set the content URL (s3://bucket, oss://bucket, ...)")
        }
        o.content = content.url.isEmpty ? nil : content
        return o
    }
}

final class FilesHandle {
    var files: [FileRequest] = []
}

/// An open store.
final class StoreHandle: @unchecked Sendable {
    let engine: Snapshotter
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

/// Runs an async body to completion from a C thread (never a cooperative
/// one: C threads and library I/O threads only).
func blockOn<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
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
        return box.value!
    }
}

final class ResultBox<T>: @unchecked Sendable {
    var value: T?
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
