import Synchronization
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

/// Test-only points inside a snapshot where a test can change the source
/// files deterministically (replace, rename, write) to play a local
/// attacker or a writer racing the snapshot. Keyed by store root. With
/// none installed (always, outside tests) a point costs one atomic load.
enum SnapshotHooks {
    enum Point: Sendable {
        /// Every listed file was looked at; nothing is read yet.
        case prepared
        /// A file's bytes were read and hashed (attempt 1, 2, ...), before
        /// they are checked for change and linked.
        case read(relativePath: String, attempt: Int)
        /// Every file is stored and durable; nothing is recorded yet.
        case stored
        /// Every file is stored, half the new content is renamed into place
        /// and the rest is being renamed; the commit takes the writer lock
        /// next (a local snapshot whose barrier syncs the filesystem).
        case placing
        /// A snapshot committed in groups committed a group: `files` are
        /// in its record so far, which is still being written.
        case groupCommitted(files: Int)
    }
    typealias Hook = @Sendable (Point) -> Void

    private static let installed = Atomic<Int>(0)
    private static let hooks = Locked<[String: Hook]>([:])

    static func install(root: String, _ hook: @escaping Hook) {
        hooks.withLock { $0[root] = hook }
        installed.add(1, ordering: .sequentiallyConsistent)
    }

    static func remove(root: String) {
        if hooks.withLock({ $0.removeValue(forKey: root) }) != nil {
            installed.subtract(1, ordering: .sequentiallyConsistent)
        }
    }

    static func reach(_ point: Point, root: String) {
        guard installed.load(ordering: .relaxed) > 0 else { return }
        hooks.withLock { $0[root] }?(point)
    }
}
