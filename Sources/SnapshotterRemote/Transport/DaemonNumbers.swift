import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// Numbers the Dragonfly daemon reports, checked before use (kept outside
/// the Dragonfly build flag so every build tests them).
package enum DaemonNumbers {
    /// A finished piece's length as a byte count: a transport error naming
    /// the field when it cannot be one (2^63 or more).
    package static func pieceLength(_ raw: UInt64, what: String) throws -> Int64 {
        guard let n = Int64(exactly: raw) else {
            throw SnapshotterError(.transport, "\(what): the Dragonfly daemon reported a piece length of \(raw) bytes, out of range")
        }
        return n
    }
}
