import CSnapshotterABI
import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

/// What a finished operation hands back besides its status.
enum OpResult: Sendable {
    case none
    case report(Report)
    case verify(VerifyReport)
}

/// Counters of snapshot, restore, delete and gc, before they become a C
/// struct.
struct Report: Sendable {
    var filesStored: Int64 = 0
    var filesKnownByInode: Int64 = 0
    var bytesRead: Int64 = 0
    var filesLinked: Int64 = 0
    var filesCopied: Int64 = 0
    var filesDecoded: Int64 = 0
    var bytesWritten: Int64 = 0
    var snapshotsEvicted: Int64 = 0
    var contentFilesRemoved: Int64 = 0
    var bytesFreed: Int64 = 0
    var orphansRemoved: Int64 = 0
    var elapsedNanos: Int64 = 0

    var c: snapshotter_report_t {
        var r = snapshotter_report_t()
        r.size = UInt32(MemoryLayout<snapshotter_report_t>.size)
        r.files_stored = filesStored
        r.files_known_by_inode = filesKnownByInode
        r.bytes_read = bytesRead
        r.files_linked = filesLinked
        r.files_copied = filesCopied
        r.files_decoded = filesDecoded
        r.bytes_written = bytesWritten
        r.snapshots_evicted = snapshotsEvicted
        r.content_files_removed = contentFilesRemoved
        r.bytes_freed = bytesFreed
        r.orphans_removed = orphansRemoved
        r.elapsed_ns = elapsedNanos
        return r
    }

    /// Copies into a caller-owned struct, no more than the size it says.
    static func copy(_ r: snapshotter_report_t, into out: UnsafeMutablePointer<snapshotter_report_t>?) {
        guard let out else { return }
        let callerSize = Int(out.pointee.size)
        var value = r
        let n = min(max(callerSize, 0), MemoryLayout<snapshotter_report_t>.size)
        withUnsafeBytes(of: &value) { src in
            UnsafeMutableRawPointer(out).copyMemory(from: src.baseAddress!, byteCount: n)
        }
        if n >= 4 { out.pointee.size = UInt32(n) }
    }
}

/// An operation in flight, as C sees it.
final class OpHandle: @unchecked Sendable {
    let store: StoreHandle
    let cancel = CancellationFlag()
    let host: HostCallbacks
    private let gate = Gate()
    private var status: Int32 = Status.inProgress
    /// The result is set (readable from the done callback on).
    private var resultReady = false
    /// The done callback has returned too (what waiters wait for).
    private var finished = false
    private var message: UnsafeMutablePointer<CChar>?
    private(set) var report: UnsafeMutablePointer<snapshotter_report_t>?
    private(set) var verifyReport: UnsafeMutablePointer<snapshotter_verify_report_t>?
    private(set) var verifyValue: VerifyReport?
    /// The pointer C holds (set once registered).
    var handle: OpaquePointer?

    init(store: StoreHandle, host: HostCallbacks) {
        self.store = store
        self.host = host
    }

    deinit {
        free(message)
        free(report)
        free(verifyReport)
    }

    /// The engine's progress handler, forwarding to the host's callback.
    var progressHandler: ProgressHandler? {
        guard let cb = host.progress else { return nil }
        let payload = host
        return { e in
            var p = snapshotter_progress_t()
            p.size = UInt32(MemoryLayout<snapshotter_progress_t>.size)
            p.phase = e.phase.rawValue
            p.files_done = e.filesDone
            p.files_total = e.filesTotal
            p.bytes_done = e.bytesDone
            p.bytes_total = e.bytesTotal
            p.files_copied = e.filesCopied
            let t = ThreadState.current
            t.callbackDepth += 1
            let rc = cb(&p, payload.payload)
            t.callbackDepth -= 1
            return rc == 0
        }
    }

    /// Starts `body` on a detached task; completion runs on a library I/O
    /// thread (callbacks never run on Swift's cooperative threads).
    func start(_ body: @escaping @Sendable (OpHandle) async throws -> OpResult) throws {
        try store.track(self)
        let started = Sys_monotonicNanos()
        Task.detached {
            var outcome: Result<OpResult, Error>
            do { outcome = .success(try await body(self)) } catch { outcome = .failure(error) }
            if case .success(.report(var r)) = outcome, r.elapsedNanos == 0 {
                r.elapsedNanos = Int64(Sys_monotonicNanos() - started)
                outcome = .success(.report(r))
            }
            let final = outcome
            LibraryThreads.run { self.complete(final) }
        }
    }

    private func complete(_ outcome: Result<OpResult, Error>) {
        let code: Int32
        gate.locked {
            switch outcome {
            case .success(let r):
                status = Status.ok
                message = strdup("")
                switch r {
                case .none: break
                case .report(let rep):
                    let p = UnsafeMutablePointer<snapshotter_report_t>.allocate(capacity: 1)
                    p.initialize(to: rep.c)
                    report = p
                case .verify(let v):
                    verifyValue = v
                    verifyReport = Pack.verifyReport(v)
                }
            case .failure(let e):
                let err = e.asStatusError
                status = Status.code(err)
                message = strdup(err.message)
            }
            resultReady = true
        }
        code = gate.locked { status }
        if let done = host.done {
            let t = ThreadState.current
            t.callbackDepth += 1
            done(handle, code, host.payload)
            t.callbackDepth -= 1
        }
        store.untrack(self)
        gate.locked {
            finished = true
            gate.broadcast()
        }
    }

    /// Waits for completion, including the done callback.
    func wait(timeoutMs: Int64) -> Int32 {
        gate.locked {
            gate.wait(until: { finished }, timeoutMs: timeoutMs) ? status : Status.timedOut
        }
    }

    var currentStatus: Int32 { gate.locked { resultReady ? status : Status.inProgress } }
    var isFinished: Bool { gate.locked { finished } }
    var errorMessage: UnsafePointer<CChar> {
        gate.locked { UnsafePointer(resultReady ? (message ?? ThreadState.empty) : ThreadState.empty) }
    }
    var finishedReport: UnsafePointer<snapshotter_report_t>? {
        gate.locked { resultReady ? report.map { UnsafePointer($0) } : nil }
    }
    var finishedVerifyValue: VerifyReport? { gate.locked { resultReady ? verifyValue : nil } }
    var finishedVerifyReport: UnsafePointer<snapshotter_verify_report_t>? {
        gate.locked { resultReady ? verifyReport.map { UnsafePointer($0) } : nil }
    }

    /// Runs `body` as an operation and blocks the calling C thread until it
    /// is done: the synchronous form of every long call.
    static func runSync(_ store: StoreHandle, _ body: @escaping @Sendable (OpHandle) async throws -> OpResult) throws -> OpHandle {
        guard !ThreadState.current.inCallback else {
            throw SnapshotterError(.busy, "a synchronous call cannot be made from a callback")
        }
        let op = OpHandle(store: store, host: HostCallbacks())
        try op.start(body)
        _ = op.wait(timeoutMs: -1)
        return op
    }
}

/// Monotonic nanoseconds, for elapsed times in reports.
func Sys_monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
