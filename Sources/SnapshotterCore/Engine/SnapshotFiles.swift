#if canImport(Glibc)
import Glibc
#endif

/// The snapshot side of the local file system: finding the listed files
/// below the base directory and storing each one.
extension Snapshotter {
    struct PreparedFile: Sendable {
        var relativePath: String
        var absolutePath: String
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

    func prepareSnapshot(_ key: SnapshotKey, baseDir: String, files: [FileRequest]) throws -> [PreparedFile] {
        let base: String
        do { base = try Sys.realpath(baseDir) } catch let e as SnapshotterError {
            throw e.context("snapshot \(key): base directory")
        }
        if try meta.env.read({ try $0.contains(meta.snapshots, key.bytes) }) {
            throw SnapshotterError(.alreadyExists, "snapshot \(key) already exists")
        }
        try SnapshotConfig.checkNoFileIsADirectory(files.map {
            SnapshotFile(relativePath: $0.relativePath, digest: Digest(0), readOnly: false, mode: 0, uid: 0, gid: 0, size: 0, mtimeNanos: 0)
        })
        var knownDirectories = Set<String>()
        // One read transaction serves every inode lookup.
        return try meta.env.read { txn in try files.map { f in
            let checked: FileStat?
            do {
                checked = try PathGuard.checkInside(base: base, relative: f.relativePath, followFinal: true,
                                                    knownDirectories: &knownDirectories)
            } catch let e as SnapshotterError {
                throw e.context("snapshot \(key)")
            }
            let abs = base + "/" + f.relativePath
            let st: stat
            if let checked {
                st = checked
            } else {
                do { st = try Sys.stat(abs) } catch let e as SnapshotterError {
                    throw e.context("snapshot \(key): file \(f.relativePath)")
                }
            }
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                throw SnapshotterError.invalid("snapshot \(key): \(f.relativePath) is not a regular file")
            }
            let known = f.readOnly ? try meta.inode(txn, dev: UInt64(st.st_dev), ino: UInt64(st.st_ino)) : nil
            return PreparedFile(relativePath: f.relativePath, absolutePath: abs, readOnly: f.readOnly, size: Int64(st.st_size),
                                stat: st, known: known)
        } }
    }

    /// Stores one file: recognised by inode (read-only, unchanged), or read
    /// once into a new content file; read-only files also get their link.
    func storeFile(_ p: PreparedFile, useInodeIndex: Bool, buffer: UnsafeMutableRawBufferPointer,
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
        let fd: Int32
        do { fd = try Sys.open(p.absolutePath, O_RDONLY) } catch let e as SnapshotterError {
            throw e.context("snapshot file \(p.relativePath)")
        }
        defer { Sys.close(fd) }
        let st = try Sys.fstat(fd, p.absolutePath)
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SnapshotterError.invalid("\(p.relativePath) is not a regular file")
        }
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
            ingested = try store.ingest(fd: fd, size: size, sourcePath: p.absolutePath, buffer: buffer) { n in
                dataBytes += n
                reporter?.addBytes(n)
                try cancel.check()
            }
        } catch let e as SnapshotterError where e.code != .canceled {
            throw e.context("snapshot file \(p.relativePath)")
        }
        // Holes count as done too, so bytes reach the logical total.
        reporter?.addBytes(max(0, size - dataBytes))
        var linked: (UInt64, UInt64)?
        if p.readOnly {
            if try store.ensureLink(source: p.absolutePath, fd: fd, size: size, digest: ingested.digest, buffer: buffer) {
                linked = (dev, ino)
            }
        }
        return StoredFile(file: file(ingested.digest), encodedSize: ingested.encodedSize, created: ingested.created,
                          knownByInode: false, linkedInode: linked, bytesRead: dataBytes)
    }
}
