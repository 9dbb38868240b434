#if canImport(Glibc)
import Glibc
#endif

/// The one error type of the engine. Its codes map one to one onto the C
/// status codes of `include/snapshotter.h`; the message names the snapshot,
/// the file and the operation that failed.
public struct SnapshotterError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: Int32, Sendable, CaseIterable {
        case invalidArgument = 1
        case notFound = 2
        case alreadyExists = 3
        case io = 4
        case corrupt = 5
        case registry = 6
        case transport = 7
        case canceled = 8
        case busy = 9
        case closed = 10
        case noSpace = 11
        case permission = 12
        case unsupported = 13
        case `internal` = 14
        case crossDevice = 15
        /// A handle used in a process forked from the one that opened it.
        case forked = 18
    }

    public let code: Code
    public let message: String

    /// The message is redacted (Redact): no URL's password or signature
    /// reaches a caller.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = Redact.text(message)
    }

    public var description: String { message }

    package static func invalid(_ message: String) -> SnapshotterError { .init(.invalidArgument, message) }
    package static func corrupt(_ message: String) -> SnapshotterError { .init(.corrupt, message) }
    package static var canceled: SnapshotterError { .init(.canceled, "operation canceled") }

    /// Maps an errno value from a failed system call to an error whose
    /// message says what was being done to which path.
    package static func errno(_ value: Int32, _ what: String) -> SnapshotterError {
        let reason = String(cString: strerror(value))
        let code: Code
        switch value {
        case ENOENT: code = .notFound
        case EEXIST: code = .alreadyExists
        case ENOSPC, EDQUOT: code = .noSpace
        case EACCES, EPERM, EROFS: code = .permission
        case EXDEV: code = .crossDevice
        case EOPNOTSUPP, ENOSYS: code = .unsupported
        case EINVAL, ENAMETOOLONG, ENOTDIR, ELOOP, EFBIG: code = .invalidArgument
        default: code = .io
        }
        return SnapshotterError(code, "\(what): \(reason)")
    }

    /// The same error with context put in front of its message.
    package func context(_ prefix: String) -> SnapshotterError {
        SnapshotterError(code, "\(prefix): \(message)")
    }
}

extension Error {
    /// Any error as a `SnapshotterError`; foreign errors become `.internal`.
    package var asSnapshotterError: SnapshotterError {
        if let e = self as? SnapshotterError { return e }
        if self is CancellationError { return .canceled }
        return SnapshotterError(.internal, "\(self)")
    }
}
