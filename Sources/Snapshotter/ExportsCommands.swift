import CSnapshotterABI
import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

// The C ABI: snapshot, restore, delete, verify, repair and gc.

func snapshotBody(_ s: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
                  _ baseDir: UnsafePointer<CChar>?, _ files: OpaquePointer?, remote: CallRemote? = nil) throws
    -> @Sendable (StoreHandle, OpHandle) async throws -> OpResult {
    let request = SnapshotRequest(
        name: try cString(name, "name"), version: try cString(version, "version"),
        baseDir: try cString(baseDir, "base directory"),
        files: try Handles.require(files, FilesHandle.self, "files").files,
        // The C report carries counts only.
        reportFiles: false)
    return { store, op in
        let r = try await store.engine.snapshot(request, progress: op.progressHandler, cancel: op.cancel, remote: remote)
        return .report(Report(filesStored: Int64(r.filesStored), filesKnownByInode: Int64(r.filesKnownByInode),
                              bytesRead: r.bytesRead))
    }
}

@_cdecl("snapshotter_snapshot_async")
public func snapshotter_snapshot_async(_ s: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
                                       _ baseDir: UnsafePointer<CChar>?, _ files: OpaquePointer?,
                                       _ progress: snapshotter_progress_cb?, _ done: snapshotter_done_cb?,
                                       _ payload: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        _ = try Handles.require(s, StoreHandle.self, "store")
        return try startAsync(s, progress, done, payload, out, try snapshotBody(s, name, version, baseDir, files))
    }
}

@_cdecl("snapshotter_snapshot")
public func snapshotter_snapshot(_ s: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
                                 _ baseDir: UnsafePointer<CChar>?, _ files: OpaquePointer?,
                                 _ report: UnsafeMutablePointer<snapshotter_report_t>?) -> Int32 {
    guarded {
        _ = try Handles.require(s, StoreHandle.self, "store")
        return try runSync(s, report, try snapshotBody(s, name, version, baseDir, files))
    }
}

func restoreBody(_ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
                 _ output: UnsafePointer<CChar>?, _ flags: UInt32, remote: CallRemote? = nil) throws
    -> @Sendable (StoreHandle, OpHandle) async throws -> OpResult {
    let overwrite = UInt32(SNAPSHOTTER_RESTORE_OVERWRITE)
    guard flags & ~overwrite == 0 else { throw SnapshotterError(.invalidArgument, "unknown restore flags 0x\(String(flags, radix: 16))") }
    let request = RestoreRequest(name: try cString(name, "name"), version: try cString(version, "version"),
                                 outputDir: try cString(output, "output directory"), overwrite: flags & overwrite != 0)
    return { store, op in
        let r = try await store.engine.restore(request, progress: op.progressHandler, cancel: op.cancel, remote: remote)
        return .report(Report(filesLinked: Int64(r.filesLinked), filesCopied: Int64(r.filesCopied),
                              filesDecoded: Int64(r.filesDecoded), bytesWritten: r.bytesWritten))
    }
}

@_cdecl("snapshotter_restore_async")
public func snapshotter_restore_async(_ s: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
                                      _ output: UnsafePointer<CChar>?, _ flags: UInt32,
                                      _ progress: snapshotter_progress_cb?, _ done: snapshotter_done_cb?,
                                      _ payload: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        _ = try Handles.require(s, StoreHandle.self, "store")
        return try startAsync(s, progress, done, payload, out, try restoreBody(name, version, output, flags))
    }
}

@_cdecl("snapshotter_restore")
public func snapshotter_restore(_ s: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
                                _ output: UnsafePointer<CChar>?, _ flags: UInt32,
                                _ report: UnsafeMutablePointer<snapshotter_report_t>?) -> Int32 {
    guarded {
        _ = try Handles.require(s, StoreHandle.self, "store")
        return try runSync(s, report, try restoreBody(name, version, output, flags))
    }
}

private func deleteBody(_ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?) throws
    -> @Sendable (StoreHandle, OpHandle) async throws -> OpResult {
    let n = try cString(name, "name"), v = try cString(version, "version")
    return { store, _ in
        let r = try await store.engine.delete(name: n, version: v)
        return .report(Report(contentFilesRemoved: Int64(r.contentFilesRemoved), bytesFreed: r.bytesFreed))
    }
}

@_cdecl("snapshotter_delete_async")
public func snapshotter_delete_async(_ s: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
                                     _ done: snapshotter_done_cb?, _ payload: UnsafeMutableRawPointer?,
                                     _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        _ = try Handles.require(s, StoreHandle.self, "store")
        return try startAsync(s, nil, done, payload, out, try deleteBody(name, version))
    }
}

@_cdecl("snapshotter_delete")
public func snapshotter_delete(_ s: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
                               _ report: UnsafeMutablePointer<snapshotter_report_t>?) -> Int32 {
    guarded {
        _ = try Handles.require(s, StoreHandle.self, "store")
        return try runSync(s, report, try deleteBody(name, version))
    }
}

private func verifyBody(repair: Bool) -> @Sendable (StoreHandle, OpHandle) async throws -> OpResult {
    { store, op in .verify(try await store.engine.verify(repair: repair, progress: op.progressHandler, cancel: op.cancel)) }
}

/// Runs verify (or repair) synchronously and hands C its own report block.
private func verifySync(_ s: OpaquePointer?, repair: Bool,
                        _ out: UnsafeMutablePointer<UnsafeMutablePointer<snapshotter_verify_report_t>?>?) throws -> Int32 {
    guard let out else { throw SnapshotterError(.invalidArgument, "out pointer is NULL") }
    out.pointee = nil
    let store = try Handles.require(s, StoreHandle.self, "store")
    let body = verifyBody(repair: repair)
    let op = try OpHandle.runSync(store) { try await body(store, $0) }
    let st = op.currentStatus
    if st != Status.ok { return Status.fail(st, String(cString: op.errorMessage)) }
    guard let r = op.finishedVerifyValue else { throw SnapshotterError(.internal, "verify finished without a report") }
    guard let copy = Pack.verifyReport(r) else { return Status.fail(Status.noMemory, "out of memory") }
    out.pointee = copy
    return Status.ok
}

@_cdecl("snapshotter_verify_async")
public func snapshotter_verify_async(_ s: OpaquePointer?, _ progress: snapshotter_progress_cb?, _ done: snapshotter_done_cb?,
                                     _ payload: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded { try startAsync(s, progress, done, payload, out, verifyBody(repair: false)) }
}

@_cdecl("snapshotter_verify")
public func snapshotter_verify(_ s: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<snapshotter_verify_report_t>?>?) -> Int32 {
    guarded { try verifySync(s, repair: false, out) }
}

@_cdecl("snapshotter_repair_async")
public func snapshotter_repair_async(_ s: OpaquePointer?, _ progress: snapshotter_progress_cb?, _ done: snapshotter_done_cb?,
                                     _ payload: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded { try startAsync(s, progress, done, payload, out, verifyBody(repair: true)) }
}

@_cdecl("snapshotter_repair")
public func snapshotter_repair(_ s: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<snapshotter_verify_report_t>?>?) -> Int32 {
    guarded { try verifySync(s, repair: true, out) }
}

private let gcBody: @Sendable (StoreHandle, OpHandle) async throws -> OpResult = { store, op in
    let r = try await store.engine.gc(progress: op.progressHandler, cancel: op.cancel)
    return .report(Report(snapshotsEvicted: Int64(r.snapshotsEvicted), contentFilesRemoved: Int64(r.contentFilesRemoved),
                          bytesFreed: r.bytesFreed, orphansRemoved: Int64(r.orphansRemoved), elapsedNanos: r.elapsedNanos))
}

@_cdecl("snapshotter_gc_async")
public func snapshotter_gc_async(_ s: OpaquePointer?, _ progress: snapshotter_progress_cb?, _ done: snapshotter_done_cb?,
                                 _ payload: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded { try startAsync(s, progress, done, payload, out, gcBody) }
}

@_cdecl("snapshotter_gc")
public func snapshotter_gc(_ s: OpaquePointer?, _ report: UnsafeMutablePointer<snapshotter_report_t>?) -> Int32 {
    guarded { try runSync(s, report, gcBody) }
}
