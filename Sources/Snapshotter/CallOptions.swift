import CSnapshotterABI
import SnapshotterCore

// Snapshot and restore with the call's own registry and content settings
// (include/snapshotter.h, "Per-call settings").

/// The call's registry and transport from `opts`; nil (the store's) when
/// `opts` is NULL.
private func callRemote(_ store: StoreHandle, _ opts: OpaquePointer?) throws -> CallRemote? {
    guard opts != nil else { return nil }
    let resolved = try Handles.require(opts, OptionsHandle.self, "options").resolved()
    return try store.engine.callRemote(registry: resolved.registry, content: resolved.content)
}

/// Starts an operation whose work `body` makes from the call's settings.
private func startWithOptions(
    _ s: OpaquePointer?, _ opts: OpaquePointer?, _ progress: snapshotter_progress_cb?, _ done: snapshotter_done_cb?,
    _ payload: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
    _ body: (CallRemote?) throws -> @Sendable (StoreHandle, OpHandle) async throws -> OpResult
) -> Int32 {
    guarded {
        out?.pointee = nil
        let store = try Handles.require(s, StoreHandle.self, "store")
        return try startAsync(s, progress, done, payload, out, try body(try callRemote(store, opts)))
    }
}

@_cdecl("snapshotter_snapshot_with_options_async")
public func snapshotter_snapshot_with_options_async(
    _ s: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
    _ baseDir: UnsafePointer<CChar>?, _ files: OpaquePointer?, _ opts: OpaquePointer?,
    _ progress: snapshotter_progress_cb?, _ done: snapshotter_done_cb?,
    _ payload: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
    startWithOptions(s, opts, progress, done, payload, out) { remote in
        try snapshotBody(s, name, version, baseDir, files, remote: remote)
    }
}

@_cdecl("snapshotter_restore_with_options_async")
public func snapshotter_restore_with_options_async(
    _ s: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
    _ output: UnsafePointer<CChar>?, _ flags: UInt32, _ opts: OpaquePointer?,
    _ progress: snapshotter_progress_cb?, _ done: snapshotter_done_cb?,
    _ payload: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
    startWithOptions(s, opts, progress, done, payload, out) { remote in
        try restoreBody(name, version, output, flags, remote: remote)
    }
}
