@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// The Log handler is process-wide and tests run in parallel: one handler,
/// installed once and never replaced, hands every message to the sinks of
/// the tests listening at that moment, so no test removes another's.
enum LogTap {
    typealias Sink = @Sendable (_ message: String, _ insideTransaction: Bool) -> Void
    private static let sinks = Locked<(next: UInt64, all: [UInt64: Sink])>((0, [:]))
    private static let installed: Bool = {
        Log.setHandler({ _, message in
            let inside = Log.isDeferring
            for sink in LogTap.sinks.withLock({ Array($0.all.values) }) { sink(message, inside) }
        }, maxLevel: .debug)
        return true
    }()

    /// Runs `body` with `sink` receiving every message logged meanwhile
    /// (by any test: filter by what is yours).
    static func listen<T>(_ sink: @escaping Sink, _ body: () async throws -> T) async rethrows -> T {
        let id = add(sink)
        defer { remove(id) }
        return try await body()
    }

    static func listen<T>(_ sink: @escaping Sink, _ body: () throws -> T) rethrows -> T {
        let id = add(sink)
        defer { remove(id) }
        return try body()
    }

    private static func add(_ sink: @escaping Sink) -> UInt64 {
        precondition(installed)
        return sinks.withLock { s in
            s.next += 1
            s.all[s.next] = sink
            return s.next
        }
    }

    private static func remove(_ id: UInt64) {
        _ = sinks.withLock { $0.all.removeValue(forKey: id) }
    }
}
