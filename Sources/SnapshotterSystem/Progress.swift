import Synchronization

/// Where an operation is.
public enum Phase: Int32, Sendable {
    case preparing = 0
    case storing = 1
    case uploading = 2
    case publishing = 3
    case committing = 4
    case fetching = 5
    case exporting = 6
    case verifying = 7
    case collecting = 8
    case done = 9
}

/// One progress event. Counters never go backwards within an operation and
/// the last event carries the totals.
public struct ProgressEvent: Sendable, Equatable {
    public var phase: Phase
    public var filesDone: Int64
    public var filesTotal: Int64
    public var bytesDone: Int64
    public var bytesTotal: Int64
    /// Read-only files that had to be copied because the output directory is
    /// on another filesystem than the store.
    public var filesCopied: Int64

    public init(phase: Phase, filesDone: Int64, filesTotal: Int64, bytesDone: Int64, bytesTotal: Int64, filesCopied: Int64 = 0) {
        self.phase = phase
        self.filesDone = filesDone
        self.filesTotal = filesTotal
        self.bytesDone = bytesDone
        self.bytesTotal = bytesTotal
        self.filesCopied = filesCopied
    }
}

/// Receives progress; returning false asks the operation to stop, which then
/// fails with `.canceled`. Called from library threads, one call at a time.
public typealias ProgressHandler = @Sendable (ProgressEvent) -> Bool

/// Counts an operation's progress from many threads and hands events to the
/// handler one at a time, in order, never with a store lock held.
package final class ProgressReporter: Sendable {
    private struct State {
        var phase = Phase.preparing
        var filesTotal: Int64 = 0
        var bytesTotal: Int64 = 0
        var lastEmitNanos: UInt64 = 0
        var last = ProgressEvent(phase: .preparing, filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0)
    }

    private let handler: ProgressHandler?
    private let cancel: CancellationFlag
    private let filesDone = Atomic<Int64>(0)
    private let bytesDone = Atomic<Int64>(0)
    private let filesCopied = Atomic<Int64>(0)
    private let state = Locked(State())
    /// Serialises calls to the handler; taken with try-lock by workers, so a
    /// slow handler costs skipped intermediate events, never blocked I/O.
    private let emitting = Locked(())
    /// Least time between two intermediate events (forced ones, like phase
    /// changes and the final event, always go out).
    private let minInterval: UInt64

    package init(handler: ProgressHandler?, cancel: CancellationFlag, minIntervalNanos: UInt64 = 2_000_000) {
        self.handler = handler
        self.cancel = cancel
        self.minInterval = minIntervalNanos
    }

    /// Starts a phase whose work adds `filesTotal` files and `bytesTotal`
    /// bytes to the operation's totals (counters are cumulative across the
    /// phases of one operation).
    package func begin(_ phase: Phase, filesTotal: Int64, bytesTotal: Int64) {
        state.withLock {
            $0.phase = phase
            $0.filesTotal = $0.filesTotal.saturatingAdd(filesTotal)
            $0.bytesTotal = $0.bytesTotal.saturatingAdd(bytesTotal)
        }
        emit(force: true)
    }

    package func setPhase(_ phase: Phase) {
        state.withLock { $0.phase = phase }
        emit(force: true)
    }

    package func addBytes(_ n: Int64) {
        // Saturating: byte counts come from daemons and servers.
        var old = bytesDone.load(ordering: .relaxed)
        while true {
            let (done, new) = bytesDone.weakCompareExchange(expected: old, desired: old.saturatingAdd(n), ordering: .relaxed)
            if done { break }
            old = new
        }
        emit(force: false)
    }

    package func fileDone(copied: Bool = false) {
        filesDone.add(1, ordering: .relaxed)
        if copied { filesCopied.add(1, ordering: .relaxed) }
        emit(force: false)
    }

    /// The final event, with done counters equal to the totals.
    package func finish() {
        state.withLock { s in
            s.phase = .done
            s.filesTotal = max(s.filesTotal, filesDone.load(ordering: .relaxed))
            s.bytesTotal = max(s.bytesTotal, bytesDone.load(ordering: .relaxed))
        }
        let totals = state.withLock { ($0.filesTotal, $0.bytesTotal) }
        filesDone.store(totals.0, ordering: .relaxed)
        bytesDone.store(totals.1, ordering: .relaxed)
        emitting.withLock { _ in deliver(force: true) }
    }

    private func emit(force: Bool) {
        guard handler != nil else { return }
        if force {
            emitting.withLock { _ in deliver(force: true) }
        } else {
            _ = emitting.ifAvailable { deliver(force: false) }
        }
    }

    /// Called with `emitting` held: computes a monotonic event and calls the
    /// handler. `emitting` guards only this; no store state is locked.
    private func deliver(force: Bool) {
        guard let handler else { return }
        let now = Sys.monotonicNanos()
        let event: ProgressEvent? = state.withLock { s in
            if !force && now &- s.lastEmitNanos < minInterval { return nil }
            var e = ProgressEvent(
                phase: s.phase,
                filesDone: max(s.last.filesDone, filesDone.load(ordering: .relaxed)),
                filesTotal: max(s.last.filesTotal, s.filesTotal),
                bytesDone: max(s.last.bytesDone, bytesDone.load(ordering: .relaxed)),
                bytesTotal: max(s.last.bytesTotal, s.bytesTotal),
                filesCopied: max(s.last.filesCopied, filesCopied.load(ordering: .relaxed)))
            e.filesDone = min(e.filesDone, max(e.filesTotal, e.filesDone))
            if !force && e == s.last { return nil }
            s.last = e
            s.lastEmitNanos = now
            return e
        }
        guard let event else { return }
        if !handler(event) { cancel.cancel() }
    }
}
