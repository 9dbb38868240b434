import CSnapshotterABI
import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

// The C ABI: operation handles, and how every command runs async or sync.

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
func runSync(_ s: OpaquePointer?, _ report: UnsafeMutablePointer<snapshotter_report_t>?,
                     _ body: @escaping @Sendable (StoreHandle, OpHandle) async throws -> OpResult) throws -> Int32 {
    let store = try Handles.require(s, StoreHandle.self, "store")
    let op = try OpHandle.runSync(store) { try await body(store, $0) }
    let st = op.currentStatus
    if st != Status.ok { return Status.fail(st, String(cString: op.errorMessage)) }
    if let r = op.finishedReport { Report.copy(r.pointee, into: report) }
    return st
}
