#if canImport(Glibc)
import Glibc
#endif
import CShim

/// The snapshot side of the local file system: finding the listed files
/// below the base directory and storing each one.
extension Snapshotter {
    struct PreparedFile: Sendable {
        var relativePath: String
        var readOnly: Bool
        var size: Int64
        /// stat of the file at prepare time.
        var stat: FileStat
        /// What the inode index says about a read-only file's inode.
        var known: InodeRecord?
    }

    struct StoredFile: Sendable {
        var file: SnapshotFile
        var encodedSize: Int64
        var created: Bool
        var knownByInode: Bool
        /// Set when the store's read-only link is the source's own inode.
        var linkedInode: (dev: UInt64, ino: UInt64)?
        var bytesRead: Int64
    }

    /// Opens the caller's base directory once (its own path may go through
    /// symlinks: the caller chose it); every listed file is then opened
    /// below this descriptor, never by its path.
    func openBaseDirectory(_ baseDir: String, _ key: SnapshotKey) throws -> Int32 {
        do { return try Sys.open(baseDir, O_RDONLY | O_DIRECTORY) } catch let e as SnapshotterError {
            throw e.context("snapshot \(key): base directory")
        }
    }

    func prepareSnapshot(_ key: SnapshotKey, base: Int32, files: [FileRequest]) throws -> [PreparedFile] {
        if try meta.env.read({ try $0.contains(meta.snapshots, key.bytes) }) {
            throw SnapshotterError(.alreadyExists, "snapshot \(key) already exists")
        }
        try SnapshotConfig.checkNoFileIsADirectory(files.map {
            SnapshotFile(relativePath: $0.relativePath, digest: Digest(0), readOnly: false, mode: 0, uid: 0, gid: 0, size: 0, mtimeNanos: 0)
        })
        // One read transaction serves every inode lookup.
        let prepared = try meta.env.read { txn in try files.map { f in
            let st = try Self.statListed(base, f.relativePath, key)
            let known = f.readOnly ? try meta.inode(txn, dev: UInt64(st.st_dev), ino: UInt64(st.st_ino)) : nil
            return PreparedFile(relativePath: f.relativePath, readOnly: f.readOnly, size: Int64(st.st_size), stat: st, known: known)
        } }
        SnapshotHooks.reach(.prepared, root: root)
        return prepared
    }

    /// What a listed file is now: one O_PATH open below the base (which
    /// touches no FIFO, device or socket) and its fstat. Anything but a
    /// regular file is refused.
    static func statListed(_ base: Int32, _ relative: String, _ key: SnapshotKey) throws -> FileStat {
        let fd = try Sys.openBeneath(base, relative, cshim_o_path(), what: "snapshot \(key): file \(relative)")
        defer { Sys.close(fd) }
        let st = try Sys.fstat(fd, relative)
        try requireRegularFile(st, "snapshot \(key): file \(relative)")
        return st
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
    /// once into a new content file; read-only files also get their link.
    func storeFile(_ p: PreparedFile, base: Int32, useInodeIndex: Bool, buffer: UnsafeMutableRawBufferPointer,
                   reporter: ProgressReporter?, cancel: CancellationFlag) throws -> StoredFile {
        // An unchanged read-only file that is the store's link: known by
        // its inode, size and mtime, without opening or reading it.
        if p.readOnly && useInodeIndex, let known = p.known, known.size == Int64(p.stat.st_size),
           known.mtimeNanos == Sys.mtimeNanos(p.stat),
           let link = try Sys.lstatIfExists(store.linkPath(known.digest)),
           link.st_dev == p.stat.st_dev, link.st_ino == p.stat.st_ino,
           let content = try Sys.lstatIfExists(store.contentPath(known.digest)) {
            let st = p.stat
            reporter?.addBytes(known.size)
            let file = SnapshotFile(relativePath: p.relativePath, digest: known.digest, readOnly: true, mode: UInt32(st.st_mode) & 0o777,
                                    uid: st.st_uid, gid: st.st_gid, size: known.size, mtimeNanos: known.mtimeNanos)
            return StoredFile(file: file, encodedSize: Int64(content.st_size), created: false, knownByInode: true,
                              linkedInode: (UInt64(st.st_dev), UInt64(st.st_ino)), bytesRead: 0)
        }
        let fd = try Sys.openBeneath(base, p.relativePath, O_RDONLY | O_NONBLOCK, what: "snapshot file \(p.relativePath)")
        defer { Sys.close(fd) }
        let st = try Sys.fstat(fd, p.relativePath)
        try Self.requireRegularFile(st, "snapshot file \(p.relativePath)")
        let size = Int64(st.st_size)
        let mtime = Sys.mtimeNanos(st)
        func file(_ d: Digest) -> SnapshotFile {
            SnapshotFile(relativePath: p.relativePath, digest: d, readOnly: p.readOnly, mode: UInt32(st.st_mode) & 0o777,
                         uid: st.st_uid, gid: st.st_gid, size: size, mtimeNanos: mtime)
        }
        let dev = UInt64(st.st_dev), ino = UInt64(st.st_ino)
        let ingested: ContentStore.Ingested
        var dataBytes: Int64 = 0
        do {
            ingested = try store.ingest(fd: fd, size: size, sourcePath: p.relativePath, buffer: buffer) { n in
                dataBytes += n
                reporter?.addBytes(n)
                try cancel.check()
            }
        } catch let e as SnapshotterError where e.code != .canceled {
            throw e.context("snapshot file \(p.relativePath)")
        }
        SnapshotHooks.reach(.read(relativePath: p.relativePath, attempt: 1), root: root)
        // Holes count as done too, so bytes reach the logical total.
        reporter?.addBytes(max(0, size - dataBytes))
        var linked: (UInt64, UInt64)?
        if p.readOnly {
            if try store.ensureLink(fd: fd, what: p.relativePath, size: size, digest: ingested.digest, buffer: buffer) {
                linked = (dev, ino)
            }
        }
        return StoredFile(file: file(ingested.digest), encodedSize: ingested.encodedSize, created: ingested.created,
                          knownByInode: false, linkedInode: linked, bytesRead: dataBytes)
    }
}
