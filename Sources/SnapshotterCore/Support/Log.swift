import Synchronization

public enum LogLevel: Int32, Sendable, Comparable {
    case error = 0, warn = 1, info = 2, debug = 3
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// The library's one logging seam: the host plugs in a handler (the C ABI
/// forwards to the host's log callback). Nothing is printed by default.
public enum Log {
    public typealias Handler = @Sendable (LogLevel, String) -> Void

    private struct State: Sendable {
        var handler: Handler?
        var maxLevel: LogLevel = .info
    }
    private static let state = Mutex(State())

    public static func setHandler(_ handler: Handler?, maxLevel: LogLevel = .info) {
        state.withLock { $0 = State(handler: handler, maxLevel: maxLevel) }
    }

    static func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        let h = state.withLock { s -> Handler? in level <= s.maxLevel ? s.handler : nil }
        guard let h else { return }
        h(level, Redact.text(message()))
    }

    static func error(_ m: @autoclosure () -> String) { log(.error, m()) }
    static func warn(_ m: @autoclosure () -> String) { log(.warn, m()) }
    static func info(_ m: @autoclosure () -> String) { log(.info, m()) }
    static func debug(_ m: @autoclosure () -> String) { log(.debug, m()) }
}
