#if canImport(Glibc)
import Glibc
#endif
import CShim
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

/// The snapshot side of the local file system: finding the listed files
/// below the base directory and storing each one.
extension Snapshotter {
    struct PreparedFile: Sendable {
        var relativePath: String
        var readOnly: Bool
        var size: Int64
        /// stat of the file at prepare time (what the inode index needs of it:
        /// a FileStat is 144 bytes, kept for every file of the snapshot).
        var stat: ListedStat
        /// What the inode index says about a read-only file's inode.
        var known: InodeRecord?
        /// The encoded size its content record gives for `known`'s digest.
        var knownEncodedSize: Int64?

        /// A slot not prepared yet.
        static let unset = PreparedFile(relativePath: "", readOnly: false, size: 0, stat: ListedStat(FileStat()), known: nil,
                                        knownEncodedSize: nil)
    }

    /// The fields of a listed file's stat a snapshot uses later.
    struct ListedStat: Sendable {
        var dev: UInt64
        var ino: UInt64
        var mtimeNanos: Int64
        var ctimeNanos: Int64
        var mode: UInt32
        var uid: uid_t
        var gid: gid_t

        init(_ st: FileStat) {
            dev = UInt64(st.st_dev)
            ino = UInt64(st.st_ino)
            mtimeNanos = Sys.mtimeNanos(st)
            ctimeNanos = Sys.ctimeNanos(st)
            mode = UInt32(st.st_mode)
            uid = st.st_uid
            gid = st.st_gid
        }
    }

    /// A source inode that is its store link, for the inode index.
    struct LinkedInode: Sendable {
        var dev: UInt64
        var ino: UInt64
        var ctimeNanos: Int64
    }

    struct StoredFile: Sendable {
        var file: SnapshotFile
        var encodedSize: Int64
        var created: Bool
        /// The content's place among its batch's renames, or -1.
        var renameOrdinal: Int32 = -1
        var knownByInode: Bool
        /// Set when the store's read-only link is the source's own inode.
        var linkedInode: LinkedInode?
        var bytesRead: Int64

        /// A slot not stored yet.
        static let unset = StoredFile(file: .placeholder, encodedSize: 0, created: false, knownByInode: false, linkedInode: nil, bytesRead: 0)
    }

    /// Opens the caller's base directory once (its own path may go through
    /// symlinks: the caller chose it); every listed file is then opened
    /// below this descriptor, never by its path. O_PATH: lookups below it
    /// need search permission only, as they did by path.
    func openBaseDirectory(_ baseDir: String, _ key: SnapshotKey) throws -> Int32 {
        do { return try Sys.open(baseDir, cshim_o_path() | O_DIRECTORY) } catch let e as SnapshotterError {
            throw e.context("snapshot \(key): base directory")
        }
    }

    /// Files prepared by one worker at a time: one read transaction and one
    /// run of directory descriptors serve them.
    static let prepareChunk = 2048

    /// Checks the list, then stats every file and looks up the inode index,
    /// in chunks on `snapshotConcurrency` workers (at many files this is
    /// system time that two cores halve).
    /// Without `checks` (a group of a snapshot committed in groups, whose
    /// caller checked the whole list), the record may exist. With
    /// `mapFaults`, each worker gives the map's pages back every that many
    /// page faults (MapPageBudget), not only at the end.
    func prepareSnapshot(_ key: SnapshotKey, base: Int32, files: [FileRequest], cancel: CancellationFlag,
                         checks: Bool = true, mapFaults: Int? = nil) async throws -> [PreparedFile] {
        if checks {
            try await pool.run { try self.checkNewSnapshot(key, files: files) }
        }
        let prepared = Locked([PreparedFile](repeating: .unset, count: files.count))
        let starts = Array(stride(from: 0, to: files.count, by: Self.prepareChunk))
        try await forEachConcurrently(starts, limit: options.snapshotConcurrency, pool: pool, cancel: cancel, bufferSize: 64) { start, _ in
            let part = try self.prepareFiles(key, base: base, files[start..<min(start + Self.prepareChunk, files.count)],
                                             mapFaults: mapFaults)
            prepared.withLock { $0.replaceSubrange(start..<(start + part.count), with: part) }
        }
        // A test seam may block: on the pool, not the caller's task.
        try await pool.run { SnapshotHooks.reach(.prepared, root: self.root) }
        // The inode and content records read are in the map's pages: not
        // kept resident through the store and commit.
        meta.releaseMapPages()
        return prepared.take(leaving: [])
    }

    /// Refuses a snapshot whose name is taken (a record a writer left
    /// unfinished when it died is dropped first) or whose list, sorted by
    /// normalizedFiles, names a file that is the directory of another.
    func checkNewSnapshot(_ key: SnapshotKey, files: [FileRequest]) throws {
        if try meta.read({ try $0.hasSnapshot(key) }), try dropAbandonedSnapshots(only: key) == 0 {
            throw SnapshotterError(.alreadyExists, "snapshot \(key) already exists")
        }
        try SnapshotConfig.checkNoFileIsADirectory(count: files.count) { files[$0].relativePath }
    }

    private func prepareFiles(_ key: SnapshotKey, base: Int32, _ files: ArraySlice<FileRequest>,
                              mapFaults: Int?) throws -> [PreparedFile] {
        let directories = ListedDirectories(base: base, key: key)
        var budget = mapFaults.map { MapPageBudget(meta, faults: $0) }
        return try meta.read { txn in try files.map { f in
            budget?.tick()
            let st = try directories.stat(f.relativePath)
            let known = f.readOnly ? try txn.inode(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino)) : nil
            // The record, not a stat of the content file: the commit trusts
            // a record whose digest is not in the trash.
            let encoded = try known.flatMap { try txn.contentRecord($0.digest)?.encodedSize }
            return PreparedFile(relativePath: f.relativePath, readOnly: f.readOnly, size: Int64(st.st_size), stat: ListedStat(st),
                                known: known, knownEncodedSize: encoded)
        } }
    }

    /// Refuses anything but a regular file, saying what it is.
    static func requireRegularFile(_ st: FileStat, _ what: @autoclosure () -> String) throws {
        let kind: String
        switch st.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: kind = "a directory"
        case S_IFLNK: kind = "a symlink (not followed)"
        case S_IFIFO: kind = "a FIFO"
        case S_IFSOCK: kind = "a socket"
        case S_IFCHR: kind = "a character device"
        case S_IFBLK: kind = "a block device"
        default: kind = "of unknown type"
        }
        throw SnapshotterError.invalid("\(what()) is \(kind), not a regular file")
    }

    /// Stores one file: recognised by inode (read-only, unchanged), or read
    /// into a new content file; read-only files also get their link.
    func storeFile(_ p: PreparedFile, base: Int32, useInodeIndex: Bool, buffer: UnsafeMutableRawBufferPointer,
                   batch: DurableBatch?, reporter: ProgressReporter?, cancel: CancellationFlag) throws -> StoredFile {
        if p.readOnly && useInodeIndex, let known = try knownByInode(p) {
            return known
        }
        let what = "snapshot file \(p.relativePath)"
        let fd = try Sys.openBeneath(base, p.relativePath, O_RDONLY | O_NONBLOCK, what: what)
        defer { Sys.close(fd) }
        let (st, ingested, bytesRead) = try ingestUnchanging(fd, p, buffer: buffer, batch: batch, reporter: reporter, cancel: cancel)
        let size = Int64(st.st_size)
        var linked: LinkedInode?
        if p.readOnly {
            if try store.ensureLink(fd: fd, st, what: p.relativePath, digest: ingested.digest, buffer: buffer, batch: batch) {
                // ctime after the link (which changed it) is what the
                // next snapshot will see if nothing else happens.
                let now = try Sys.fstat(fd, p.relativePath)
                linked = LinkedInode(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino), ctimeNanos: Sys.ctimeNanos(now))
            }
        }
        let file = SnapshotFile(relativePath: p.relativePath, digest: ingested.digest, readOnly: p.readOnly,
                                mode: UInt32(st.st_mode) & 0o777, uid: st.st_uid, gid: st.st_gid, size: size,
                                mtimeNanos: Sys.mtimeNanos(st))
        return StoredFile(file: file, encodedSize: ingested.encodedSize, created: ingested.created,
                          renameOrdinal: ingested.renameOrdinal, knownByInode: false, linkedInode: linked, bytesRead: bytesRead)
    }

    /// An unchanged read-only file that is the store's link, known by its
    /// inode, size, mtime and ctime from prepare's one stat, without
    /// reading it. The record's ctime was taken after the store linked this
    /// inode, and any chmod, write, utimensat, link or unlink of it changes
    /// ctime: the same ctime means the store's link is still this inode (a
    /// removed or replaced link took one of its names away), so the link
    /// is not stat'ed again. A collector deleting the content meanwhile is
    /// caught by the commit (trash entry or no content record: checked on
    /// disk).
    private func knownByInode(_ p: PreparedFile) throws -> StoredFile? {
        let st = p.stat
        guard let known = p.known, let ctime = known.ctimeNanos, known.size == p.size,
              known.mtimeNanos == st.mtimeNanos, ctime == st.ctimeNanos,
              let encodedSize = p.knownEncodedSize else { return nil }
        let file = SnapshotFile(relativePath: p.relativePath, digest: known.digest, readOnly: true, mode: st.mode & 0o777,
                                uid: st.uid, gid: st.gid, size: known.size, mtimeNanos: known.mtimeNanos)
        return StoredFile(file: file, encodedSize: encodedSize, created: false, knownByInode: true,
                          linkedInode: LinkedInode(dev: st.dev, ino: st.ino, ctimeNanos: ctime), bytesRead: 0)
    }

    /// How many times a file that changes while it is read is read again
    /// before the snapshot gives up on it.
    static let maxReadAttempts = 4

    private struct SourceChanged: Error {}

    /// Reads the open file into the content store until one read saw it
    /// unchanged from start to end (size, mtime and ctime by fstat before
    /// and after), so nothing torn is stored; the content is only put in
    /// place after that check. Returns the stat the bytes belong to, what
    /// was stored, and the bytes read over all attempts.
    private func ingestUnchanging(_ fd: Int32, _ p: PreparedFile, buffer: UnsafeMutableRawBufferPointer, batch: DurableBatch?,
                                  reporter: ProgressReporter?, cancel: CancellationFlag)
        throws -> (FileStat, ContentStore.Ingested, Int64) {
        let what = "snapshot file \(p.relativePath)"
        var before = try Sys.fstat(fd, p.relativePath)
        try Self.requireRegularFile(before, what)
        var bytesRead: Int64 = 0
        var reported: Int64 = 0
        for attempt in 1...Self.maxReadAttempts {
            let size = Int64(before.st_size)
            var attemptBytes: Int64 = 0
            let check = { () throws -> Bool in
                let after = try Sys.fstat(fd, p.relativePath)
                if Self.sameVersion(before, after) { return true }
                before = after
                return false
            }
            do {
                let ingested = try store.ingest(fd: fd, size: size, sourcePath: p.relativePath, buffer: buffer, batch: batch, onBytes: { n in
                    bytesRead += n
                    attemptBytes += n
                    // A re-read reports only what goes past the last attempt.
                    if attemptBytes > reported { reporter?.addBytes(attemptBytes - reported); reported = attemptBytes }
                    try cancel.check()
                }, beforePlacing: {
                    SnapshotHooks.reach(.read(relativePath: p.relativePath, attempt: attempt), root: root)
                    if try !check() { throw SourceChanged() }
                })
                // Holes count as done too, so bytes reach the logical total.
                reporter?.addBytes(max(0, size - reported))
                return (before, ingested, bytesRead)
            } catch is SourceChanged {
                continue
            } catch let e as SnapshotterError where e.code != .canceled {
                // A file cut short while read fails the read: if it changed,
                // that is a change like any other.
                if try !check() { continue }
                throw e.context(what)
            }
        }
        throw SnapshotterError(.busy, "\(what): it changed while it was read, \(Self.maxReadAttempts) times; snapshot it when it is not being written")
    }

    /// The same version of a file: neither data nor metadata changed.
    static func sameVersion(_ a: FileStat, _ b: FileStat) -> Bool {
        a.st_size == b.st_size && Sys.mtimeNanos(a) == Sys.mtimeNanos(b) && Sys.ctimeNanos(a) == Sys.ctimeNanos(b)
    }
}
