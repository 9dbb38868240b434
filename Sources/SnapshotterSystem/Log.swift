import Synchronization

public enum LogLevel: Int32, Sendable, Comparable {
    case error = 0, warn = 1, info = 2, debug = 3
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// The library's one logging seam: the host plugs in a handler (the C ABI
/// forwards to the host's log callback). Nothing is printed by default.
/// The handler never runs inside a metadata transaction: messages produced
/// there are held and delivered once it ended (`deferring`).
public enum Log {
    public typealias Handler = @Sendable (LogLevel, String) -> Void

    private struct State: Sendable {
        var handler: Handler?
        var maxLevel: LogLevel = .info
    }
    private static let state = Locked(State())

    /// Messages held until the end of the `deferring` call that made it.
    package final class Held: Sendable {
        package let messages = Locked<[(LogLevel, String)]>([])
    }
    @TaskLocal package static var held: Held?

    public static func setHandler(_ handler: Handler?, maxLevel: LogLevel = .info) {
        state.withLock { $0 = State(handler: handler, maxLevel: maxLevel) }
    }

    /// Runs `body` with delivery held until it returns or throws (nested
    /// calls join the outermost). Wraps every section the handler must not
    /// run in: transactions, and anything that holds a lock on store state.
    package static func deferring<T>(_ body: () throws -> T) rethrows -> T {
        if held != nil { return try body() }
        let h = Held()
        defer {
            for (level, message) in h.messages.withLock({ $0 }) { deliver(level, message) }
        }
        return try $held.withValue(h) { try body() }
    }

    /// Whether delivery is held here (the caller is inside `deferring`).
    package static var isDeferring: Bool { held != nil }

    package static func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard state.withLock({ level <= $0.maxLevel && $0.handler != nil }) else { return }
        if let held {
            let m = message()
            held.messages.withLock { $0.append((level, m)) }
            return
        }
        deliver(level, message())
    }

    private static func deliver(_ level: LogLevel, _ message: String) {
        let h = state.withLock { s -> Handler? in level <= s.maxLevel ? s.handler : nil }
        guard let h else { return }
        h(level, Redact.text(message))
    }

    package static func error(_ m: @autoclosure () -> String) { log(.error, m()) }
    package static func warn(_ m: @autoclosure () -> String) { log(.warn, m()) }
    package static func info(_ m: @autoclosure () -> String) { log(.info, m()) }
    package static func debug(_ m: @autoclosure () -> String) { log(.debug, m()) }
}
