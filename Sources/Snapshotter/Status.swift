import CSnapshotterABI
import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

/// Status codes and the per-thread last error message.
enum Status {
    static let ok = SNAPSHOTTER_OK
    static let invalid = SNAPSHOTTER_EINVAL
    static let busy = SNAPSHOTTER_EBUSY
    static let unsupported = SNAPSHOTTER_EUNSUPPORTED
    static let internalError = SNAPSHOTTER_EINTERNAL
    static let timedOut = SNAPSHOTTER_ETIMEDOUT
    static let inProgress = SNAPSHOTTER_EINPROGRESS
    static let noMemory = SNAPSHOTTER_ENOMEM
    static let forked = SNAPSHOTTER_EFORKED

    static func code(_ e: SnapshotterError) -> Int32 {
        switch e.code {
        case .invalidArgument: return SNAPSHOTTER_EINVAL
        case .notFound: return SNAPSHOTTER_ENOTFOUND
        case .alreadyExists: return SNAPSHOTTER_EEXISTS
        case .io, .crossDevice: return SNAPSHOTTER_EIO
        case .corrupt: return SNAPSHOTTER_ECORRUPT
        case .registry: return SNAPSHOTTER_EREGISTRY
        case .transport: return SNAPSHOTTER_ETRANSPORT
        case .canceled: return SNAPSHOTTER_ECANCELED
        case .busy: return SNAPSHOTTER_EBUSY
        case .closed: return SNAPSHOTTER_ECLOSED
        case .noSpace: return SNAPSHOTTER_ENOSPACE
        case .permission: return SNAPSHOTTER_EPERM
        case .unsupported: return SNAPSHOTTER_EUNSUPPORTED
        case .internal: return SNAPSHOTTER_EINTERNAL
        case .forked: return SNAPSHOTTER_EFORKED
        }
    }

    /// snapshotter_strerror's text: the header's name and what it means.
    static let names: [Int32: String] = [
        SNAPSHOTTER_OK: "SNAPSHOTTER_OK: success",
        SNAPSHOTTER_EINVAL: "SNAPSHOTTER_EINVAL: invalid argument",
        SNAPSHOTTER_ENOTFOUND: "SNAPSHOTTER_ENOTFOUND: not found",
        SNAPSHOTTER_EEXISTS: "SNAPSHOTTER_EEXISTS: already exists",
        SNAPSHOTTER_EIO: "SNAPSHOTTER_EIO: I/O error",
        SNAPSHOTTER_ECORRUPT: "SNAPSHOTTER_ECORRUPT: corrupt content",
        SNAPSHOTTER_EREGISTRY: "SNAPSHOTTER_EREGISTRY: registry error",
        SNAPSHOTTER_ETRANSPORT: "SNAPSHOTTER_ETRANSPORT: transport error",
        SNAPSHOTTER_ECANCELED: "SNAPSHOTTER_ECANCELED: canceled",
        SNAPSHOTTER_EBUSY: "SNAPSHOTTER_EBUSY: busy",
        SNAPSHOTTER_ECLOSED: "SNAPSHOTTER_ECLOSED: store closed",
        SNAPSHOTTER_ENOSPACE: "SNAPSHOTTER_ENOSPACE: no space left",
        SNAPSHOTTER_EPERM: "SNAPSHOTTER_EPERM: permission denied",
        SNAPSHOTTER_EUNSUPPORTED: "SNAPSHOTTER_EUNSUPPORTED: not supported",
        SNAPSHOTTER_EINTERNAL: "SNAPSHOTTER_EINTERNAL: internal error",
        SNAPSHOTTER_ETIMEDOUT: "SNAPSHOTTER_ETIMEDOUT: timed out",
        SNAPSHOTTER_EINPROGRESS: "SNAPSHOTTER_EINPROGRESS: in progress",
        SNAPSHOTTER_ENOMEM: "SNAPSHOTTER_ENOMEM: out of memory",
        SNAPSHOTTER_EFORKED: "SNAPSHOTTER_EFORKED: handle from another process (after fork)",
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
