import CSnapshotterABI
import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

/// Status codes and the per-thread last error message.
enum Status {
    static let ok: Int32 = 0
    static let invalid: Int32 = -30601
    static let busy: Int32 = -30609
    static let unsupported: Int32 = -30613
    static let internalError: Int32 = -30614
    static let timedOut: Int32 = -30615
    static let inProgress: Int32 = -30616
    static let noMemory: Int32 = -30617
    static let forked: Int32 = -30618

    static func code(_ e: SnapshotterError) -> Int32 {
        switch e.code {
        case .crossDevice: return -30604
        default: return -(30600 + e.code.rawValue)
        }
    }

    static let names: [Int32: String] = [
        0: "SNAPSHOTTER_OK: success",
        -30601: "SNAPSHOTTER_EINVAL: invalid argument",
        -30602: "SNAPSHOTTER_ENOTFOUND: not found",
        -30603: "SNAPSHOTTER_EEXISTS: already exists",
        -30604: "SNAPSHOTTER_EIO: I/O error",
        -30605: "SNAPSHOTTER_ECORRUPT: corrupt content",
        -30606: "SNAPSHOTTER_EREGISTRY: registry error",
        -30607: "SNAPSHOTTER_ETRANSPORT: transport error",
        -30608: "SNAPSHOTTER_ECANCELED: canceled",
        -30609: "SNAPSHOTTER_EBUSY: busy",
        -30610: "SNAPSHOTTER_ECLOSED: store closed",
        -30611: "SNAPSHOTTER_ENOSPACE: no space left",
        -30612: "SNAPSHOTTER_EPERM: permission denied",
        -30613: "SNAPSHOTTER_EUNSUPPORTED: not supported",
        -30614: "SNAPSHOTTER_EINTERNAL: internal error",
        -30615: "SNAPSHOTTER_ETIMEDOUT: timed out",
        -30616: "SNAPSHOTTER_EINPROGRESS: in progress",
        -30617: "SNAPSHOTTER_ENOMEM: out of memory",
        -30618: "SNAPSHOTTER_EFORKED: handle from another process (after fork)",
    ]

    /// The static C strings behind snapshotter_strerror.
    nonisolated(unsafe) static let cNames: [Int32: UnsafeMutablePointer<CChar>] = names.mapValues { strdup($0)! }
    nonisolated(unsafe) static let forkedOpMessage: UnsafeMutablePointer<CChar> = strdup(Handles.forkedMessage("operation"))!
    nonisolated(unsafe) static let unknown: UnsafeMutablePointer<CChar> = strdup("SNAPSHOTTER_E?: unknown status code")!

    /// Records `message` as this thread's last error and returns `status`.
    @discardableResult
    static func fail(_ status: Int32, _ message: String) -> Int32 {
        ThreadState.current.setLastError(message)
        return status
    }

    static func fail(_ error: Error) -> Int32 {
        let e = error.asStatusError
        return fail(code(e), e.message)
    }
}

extension Error {
    var asStatusError: SnapshotterError {
        if let e = self as? SnapshotterError { return e }
        if self is CancellationError { return SnapshotterError(.canceled, "operation canceled") }
        return SnapshotterError(.internal, "\(self)")
    }
}

/// Per-thread state: the last error message and whether the thread is
/// inside a host callback (where blocking calls are refused).
final class ThreadState {
    private var lastError: UnsafeMutablePointer<CChar>?
    var callbackDepth = 0
    /// Ops freed from inside their own done callback, released after it.
    var deferredFrees: [OpHandle] = []

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { raw in
            guard let raw else { return }
            Unmanaged<ThreadState>.fromOpaque(raw).release()
        }
        return k
    }()

    static var current: ThreadState {
        if let raw = pthread_getspecific(key) {
            return Unmanaged<ThreadState>.fromOpaque(raw).takeUnretainedValue()
        }
        let s = ThreadState()
        pthread_setspecific(key, Unmanaged.passRetained(s).toOpaque())
        return s
    }

    deinit { free(lastError) }

    func setLastError(_ message: String) {
        free(lastError)
        lastError = strdup(message)
    }

    nonisolated(unsafe) static let empty: UnsafeMutablePointer<CChar> = strdup("")!

    var lastErrorPointer: UnsafePointer<CChar> { UnsafePointer(lastError ?? ThreadState.empty) }

    var inCallback: Bool { callbackDepth > 0 }
}

/// Reads a C string argument: NULL and invalid UTF-8 are clear errors.
func cString(_ p: UnsafePointer<CChar>?, _ what: String, allowEmpty: Bool = false) throws -> String {
    guard let p else { throw SnapshotterError(.invalidArgument, "\(what) is NULL") }
    let len = strlen(p)
    let bytes = UnsafeRawBufferPointer(start: p, count: len)
    guard let s = String(validating: bytes, as: UTF8.self) else {
        throw SnapshotterError(.invalidArgument, "\(what) is not valid UTF-8")
    }
    if !allowEmpty && s.isEmpty { throw SnapshotterError(.invalidArgument, "\(what) is empty") }
    return s
}
