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

// MARK: options

@_cdecl("snapshotter_options_new")
public func snapshotter_options_new() -> OpaquePointer? {
    Handles.register(OptionsHandle())
}

@_cdecl("snapshotter_options_free")
public func snapshotter_options_free(_ opts: OpaquePointer?) {
    _ = Handles.remove(opts, as: OptionsHandle.self)
}

// MARK: store

@_cdecl("snapshotter_open")
public func snapshotter_open(_ root: UnsafePointer<CChar>?, _ opts: OpaquePointer?,
                             _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        guard let out else { throw SnapshotterError(.invalidArgument, "out pointer is NULL") }
        out.pointee = nil
        let path = try cString(root, "root directory")
        var options = StoreOptions()
        if opts != nil { options = try Handles.require(opts, OptionsHandle.self, "options").resolved() }
        let engine = try Snapshotter(root: path, options: options)
        out.pointee = Handles.register(StoreHandle(engine: engine))
        return Status.ok
    }
}

@_cdecl("snapshotter_close")
public func snapshotter_close(_ s: OpaquePointer?) -> Int32 {
    guarded {
        guard s != nil else { return Status.ok }
        guard !ThreadState.current.inCallback else {
            throw SnapshotterError(.busy, "snapshotter_close cannot be called from a callback")
        }
        guard let store = Handles.remove(s, as: StoreHandle.self) else {
            throw SnapshotterError(.invalidArgument, "store handle is invalid or already closed")
        }
        // In a forked child: forget the handle, leak its memory (header).
        if Handles.isForked(store) { Handles.abandon(store); return Status.ok }
        store.close()
        return Status.ok
    }
}

@_cdecl("snapshotter_reconfigure")
public func snapshotter_reconfigure(_ s: OpaquePointer?, _ opts: OpaquePointer?) -> Int32 {
    guarded {
        let store = try Handles.require(s, StoreHandle.self, "store")
        let o = try Handles.require(opts, OptionsHandle.self, "options")
        let resolved = try o.resolved()
        try store.engine.setRegistry(resolved.registry)
        try store.engine.setContent(resolved.content)
        return Status.ok
    }
}

@_cdecl("snapshotter_active_operations")
public func snapshotter_active_operations(_ s: OpaquePointer?) -> Int32 {
    guarded { Int32(try Handles.require(s, StoreHandle.self, "store").runningCount) }
}

// MARK: file lists

@_cdecl("snapshotter_files_new")
public func snapshotter_files_new() -> OpaquePointer? {
    Handles.register(FilesHandle())
}

@_cdecl("snapshotter_files_add")
public func snapshotter_files_add(_ files: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ readOnly: Int32) -> Int32 {
    guarded {
        let f = try Handles.require(files, FilesHandle.self, "files")
        f.files.append(FileRequest(try cString(path, "relative path"), readOnly: readOnly != 0))
        return Status.ok
    }
}

@_cdecl("snapshotter_files_free")
public func snapshotter_files_free(_ files: OpaquePointer?) {
    _ = Handles.remove(files, as: FilesHandle.self)
}

// MARK: operations

@_cdecl("snapshotter_op_wait")
public func snapshotter_op_wait(_ op: OpaquePointer?, _ timeoutMs: Int64) -> Int32 {
    guarded {
        let o = try Handles.require(op, OpHandle.self, "operation")
        guard !ThreadState.current.inCallback else {
            throw SnapshotterError(.busy, "snapshotter_op_wait cannot be called from a callback")
        }
        let st = o.wait(timeoutMs: timeoutMs)
        if st == Status.timedOut { return Status.fail(st, "operation still running after \(timeoutMs) ms") }
        if st != Status.ok { Status.fail(st, String(cString: o.errorMessage)) }
        return st
    }
}

@_cdecl("snapshotter_op_cancel")
public func snapshotter_op_cancel(_ op: OpaquePointer?) -> Int32 {
    guarded {
        try Handles.require(op, OpHandle.self, "operation").cancel.cancel()
        return Status.ok
    }
}

@_cdecl("snapshotter_op_status")
public func snapshotter_op_status(_ op: OpaquePointer?) -> Int32 {
    guarded { try Handles.require(op, OpHandle.self, "operation").currentStatus }
}

@_cdecl("snapshotter_op_error")
public func snapshotter_op_error(_ op: OpaquePointer?) -> UnsafePointer<CChar> {
    guard let o = Handles.lookup(op, as: OpHandle.self) else {
        Status.fail(Status.invalid, "operation handle is invalid or already freed")
        return UnsafePointer(ThreadState.empty)
    }
    if Handles.isForked(o) { return UnsafePointer(Status.forkedOpMessage) }
    return o.errorMessage
}

@_cdecl("snapshotter_op_free")
public func snapshotter_op_free(_ op: OpaquePointer?) {
    guard op != nil else { return }
    guard let o = Handles.remove(op, as: OpHandle.self) else {
        Status.fail(Status.invalid, "operation handle is invalid or already freed")
        return
    }
    if Handles.isForked(o) { Handles.abandon(o); return }
    if !o.isFinished {
        o.cancel.cancel()
        // From a callback the op cannot be waited for: it is released when
        // it finishes (the running task holds it until then).
        if !ThreadState.current.inCallback { _ = o.wait(timeoutMs: -1) }
    }
}

@_cdecl("snapshotter_op_report")
public func snapshotter_op_report(_ op: OpaquePointer?) -> UnsafePointer<snapshotter_report_t>? {
    Handles.lookup(op, as: OpHandle.self).flatMap { Handles.isForked($0) ? nil : $0.finishedReport }
}

@_cdecl("snapshotter_op_verify_report")
public func snapshotter_op_verify_report(_ op: OpaquePointer?) -> UnsafePointer<snapshotter_verify_report_t>? {
    Handles.lookup(op, as: OpHandle.self).flatMap { Handles.isForked($0) ? nil : $0.finishedVerifyReport }
}

/// Starts an async operation and hands its handle to C.
func startAsync(_ s: OpaquePointer?, _ progress: snapshotter_progress_cb?, _ done: snapshotter_done_cb?,
                        _ payload: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                        _ body: @escaping @Sendable (StoreHandle, OpHandle) async throws -> OpResult) throws -> Int32 {
    guard let out else { throw SnapshotterError(.invalidArgument, "op_out pointer is NULL") }
    out.pointee = nil
    let store = try Handles.require(s, StoreHandle.self, "store")
    let op = OpHandle(store: store, host: HostCallbacks(progress: progress, done: done, payload: payload))
    let handle = Handles.register(op)
    op.handle = handle
    do {
        try op.start { try await body(store, $0) }
    } catch {
        _ = Handles.remove(handle, as: OpHandle.self)
        throw error
    }
    out.pointee = handle
    return Status.ok
}

/// Runs an operation synchronously; returns its status and fills `report`.
private func runSync(_ s: OpaquePointer?, _ report: UnsafeMutablePointer<snapshotter_report_t>?,
                     _ body: @escaping @Sendable (StoreHandle, OpHandle) async throws -> OpResult) throws -> Int32 {
    let store = try Handles.require(s, StoreHandle.self, "store")
    let op = try OpHandle.runSync(store) { try await body(store, $0) }
    let st = op.currentStatus
    if st != Status.ok { return Status.fail(st, String(cString: op.errorMessage)) }
    if let r = op.finishedReport { Report.copy(r.pointee, into: report) }
    return st
}

func snapshotBody(_ s: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
                  _ baseDir: UnsafePointer<CChar>?, _ files: OpaquePointer?, remote: CallRemote? = nil) throws
    -> @Sendable (StoreHandle, OpHandle) async throws -> OpResult {
    let request = SnapshotRequest(
        name: try cString(name, "name"), version: try cString(version, "version"),
        baseDir: try cString(baseDir, "base directory"),
        files: try Handles.require(files, FilesHandle.self, "files").files)
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

// MARK: queries and results

@_cdecl("snapshotter_list")
public func snapshotter_list(_ s: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<snapshotter_snapshot_list_t>?>?) -> Int32 {
    guarded {
        guard let out else { throw SnapshotterError(.invalidArgument, "out pointer is NULL") }
        out.pointee = nil
        let store = try Handles.require(s, StoreHandle.self, "store")
        guard !ThreadState.current.inCallback else { throw SnapshotterError(.busy, "snapshotter_list cannot be called from a callback") }
        let items = try blockOnThrowing { try await store.engine.list() }
        guard let packed = Pack.snapshotList(items) else { return Status.fail(Status.noMemory, "out of memory") }
        out.pointee = packed
        return Status.ok
    }
}

@_cdecl("snapshotter_files")
public func snapshotter_files(_ s: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
                              _ out: UnsafeMutablePointer<UnsafeMutablePointer<snapshotter_file_list_t>?>?) -> Int32 {
    guarded {
        guard let out else { throw SnapshotterError(.invalidArgument, "out pointer is NULL") }
        out.pointee = nil
        let store = try Handles.require(s, StoreHandle.self, "store")
        let n = try cString(name, "name"), v = try cString(version, "version")
        guard !ThreadState.current.inCallback else { throw SnapshotterError(.busy, "snapshotter_files cannot be called from a callback") }
        let info = try blockOnThrowing { try await store.engine.info(name: n, version: v) }
        guard let packed = Pack.fileList(info) else { return Status.fail(Status.noMemory, "out of memory") }
        out.pointee = packed
        return Status.ok
    }
}

@_cdecl("snapshotter_stats")
public func snapshotter_stats(_ s: OpaquePointer?, _ out: UnsafeMutablePointer<snapshotter_stats_t>?) -> Int32 {
    guarded {
        guard let out else { throw SnapshotterError(.invalidArgument, "out pointer is NULL") }
        let store = try Handles.require(s, StoreHandle.self, "store")
        guard !ThreadState.current.inCallback else { throw SnapshotterError(.busy, "snapshotter_stats cannot be called from a callback") }
        let st = try blockOnThrowing { try await store.engine.stats() }
        var v = snapshotter_stats_t()
        v.size = UInt32(MemoryLayout<snapshotter_stats_t>.size)
        v.store_bytes = st.storeBytes
        v.content_files = Int64(st.contentFiles)
        v.snapshots = Int64(st.snapshots)
        v.oldest_access_ns = st.oldestAccessNanos ?? 0
        v.disk_total_bytes = st.disk.totalBytes
        v.disk_used_bytes = st.disk.usedBytes
        let n = min(Int(out.pointee.size), MemoryLayout<snapshotter_stats_t>.size)
        withUnsafeBytes(of: &v) { UnsafeMutableRawPointer(out).copyMemory(from: $0.baseAddress!, byteCount: max(n, 0)) }
        if n >= 4 { out.pointee.size = UInt32(n) }
        return Status.ok
    }
}

@_cdecl("snapshotter_snapshot_list_free")
public func snapshotter_snapshot_list_free(_ list: UnsafeMutablePointer<snapshotter_snapshot_list_t>?) { free(list) }

@_cdecl("snapshotter_file_list_free")
public func snapshotter_file_list_free(_ list: UnsafeMutablePointer<snapshotter_file_list_t>?) { free(list) }

@_cdecl("snapshotter_verify_report_free")
public func snapshotter_verify_report_free(_ r: UnsafeMutablePointer<snapshotter_verify_report_t>?) { free(r) }
