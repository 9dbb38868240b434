import CSnapshotterABI
import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

// The C ABI of include/snapshotter.h. Each function only translates:
// handles, strings, callbacks and errors in; engine calls; statuses out.
// Nothing here may trap on what C passes in.

/// Runs `body`, turning any thrown error into a status and last error.
@inline(__always)
func guarded(_ body: () throws -> Int32) -> Int32 {
    do { return try body() } catch { return Status.fail(error) }
}

nonisolated(unsafe) private let versionString: UnsafeMutablePointer<CChar> = strdup(SNAPSHOTTER_VERSION_STRING)!

@_cdecl("snapshotter_version")
public func snapshotter_version() -> Int32 {
    SNAPSHOTTER_VERSION_MAJOR * 10000 + SNAPSHOTTER_VERSION_MINOR * 100 + SNAPSHOTTER_VERSION_PATCH
}

@_cdecl("snapshotter_version_string")
public func snapshotter_version_string() -> UnsafePointer<CChar> { UnsafePointer(versionString) }

@_cdecl("snapshotter_strerror")
public func snapshotter_strerror(_ status: Int32) -> UnsafePointer<CChar> {
    UnsafePointer(Status.cNames[status] ?? Status.unknown)
}

@_cdecl("snapshotter_last_error")
public func snapshotter_last_error() -> UnsafePointer<CChar> {
    ThreadState.current.lastErrorPointer
}

private struct LogTarget: @unchecked Sendable {
    var cb: snapshotter_log_cb
    var payload: UnsafeMutableRawPointer?
}

@_cdecl("snapshotter_set_log_callback")
public func snapshotter_set_log_callback(_ cb: snapshotter_log_cb?, _ maxLevel: Int32,
                                         _ payload: UnsafeMutableRawPointer?) -> Int32 {
    guard let cb else {
        Log.setHandler(nil)
        return Status.ok
    }
    guard let level = LogLevel(rawValue: maxLevel) else {
        return Status.fail(Status.invalid, "log level \(maxLevel) is not one of SNAPSHOTTER_LOG_ERROR..SNAPSHOTTER_LOG_DEBUG")
    }
    let target = LogTarget(cb: cb, payload: payload)
    Log.setHandler({ level, message in
        message.withCString { target.cb(level.rawValue, $0, target.payload) }
    }, maxLevel: level)
    return Status.ok
}
