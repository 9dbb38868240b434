import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// A snapshot's stored files as the commit gets them.
extension Snapshotter {
    /// What the commit's tables need of a stored file besides its record
    /// fields.
    struct StoreFacts: Sendable {
        var encodedSize: Int64
        var bytesRead: Int64
        /// Set when the store's read-only link is the source's own inode.
        var linkedInode: LinkedInode?
        var created: Bool
        var knownByInode: Bool
        /// The content's place among its batch's renames, or -1 (in the
        /// padding: the stride stays 48 bytes).
        var renameOrdinal: Int32

        init(_ s: StoredFile) {
            encodedSize = s.encodedSize
            bytesRead = s.bytesRead
            linkedInode = s.linkedInode
            created = s.created
            knownByInode = s.knownByInode
            renameOrdinal = s.renameOrdinal
        }
    }

    /// Stored files in two arrays of one order: the record's files, which
    /// become the report's list without a copy, and the facts only the
    /// commit's tables need, which the commit drops before it writes the
    /// record (at 100,000 files, 24 MB of LMDB's dirty pages).
    struct StoredFiles: Sendable {
        var files: [SnapshotFile]
        var facts: [StoreFacts]

        static let empty = StoredFiles(files: [], facts: [])

        init(files: [SnapshotFile], facts: [StoreFacts]) {
            self.files = files
            self.facts = facts
        }

        init(_ stored: [StoredFile]) {
            files = stored.map(\.file)
            facts = stored.map(StoreFacts.init)
        }

        /// `count` slots not stored yet.
        init(unset count: Int) {
            files = Array(repeating: StoredFile.unset.file, count: count)
            facts = Array(repeating: StoreFacts(.unset), count: count)
        }

        var count: Int { files.count }

        subscript(_ i: Int) -> StoredFile {
            get {
                let f = facts[i]
                return StoredFile(file: files[i], encodedSize: f.encodedSize, created: f.created, renameOrdinal: f.renameOrdinal,
                                  knownByInode: f.knownByInode,
                                  linkedInode: f.linkedInode, bytesRead: f.bytesRead)
            }
            set {
                files[i] = newValue.file
                facts[i] = StoreFacts(newValue)
            }
        }

        /// Content another process (or a stored file not looked up) put
        /// in place first was not created by this snapshot.
        mutating func notCreated(placedFirstByOthers lost: Set<Digest>) {
            if lost.isEmpty { return }
            for i in facts.indices where facts[i].created && lost.contains(files[i].digest) { facts[i].created = false }
        }

        /// In strictly increasing path order (as a record keeps them).
        var isSortedByPath: Bool {
            files.indices.dropFirst().allSatisfy { PathGuard.precedes(files[$0 - 1].relativePath, files[$0].relativePath) }
        }

        mutating func sortByPath() {
            let order = files.indices.sorted { PathGuard.precedes(files[$0].relativePath, files[$1].relativePath) }
            files = order.map { files[$0] }
            facts = order.map { facts[$0] }
        }
    }
}
