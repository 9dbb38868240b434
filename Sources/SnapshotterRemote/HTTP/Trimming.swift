import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// Trimming without Foundation, for header lines and values.
extension StringProtocol {
    package func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s.removeFirst() }
        while let l = s.last, chars.contains(l) { s.removeLast() }
        return String(s)
    }
}
