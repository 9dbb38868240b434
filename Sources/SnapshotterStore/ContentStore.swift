#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import CShim
import SnapshotterSystem

/// The content-addressed files under `<root>/storage` (FORMAT.md section 3):
/// `content/xxh3/<hex>` holds the SPF1 encoding of every stored file and
/// `snapshot/xxh3/<hex>` a hard link to the original bytes of read-only
/// files. New files are written under a temporary name in the same
/// directory, made durable, then renamed, so a final name always holds
/// complete content. Knows nothing of metadata, registries or transports.
package final class ContentStore: Sendable {
    package static let tempPrefix = ".snapshotter-tmp-"

    package let contentDir: String
    package let linkDir: String
    package let permissions: StorePermissions
    /// The two directories, open for the store's lifetime: per-file calls
    /// go relative to them.
    package let contentDirFD: Int32
    package let linkDirFD: Int32
    private static let counter = Atomic<UInt64>(0)

    package init(root: String, permissions: StorePermissions = StorePermissions()) throws {
        contentDir = root + "/storage/content/xxh3"
        linkDir = root + "/storage/snapshot/xxh3"
        self.permissions = permissions
        for dir in ["storage", "storage/content", "storage/content/xxh3", "storage/snapshot", "storage/snapshot/xxh3"] {
            try permissions.ownDirectory(root + "/" + dir)
        }
        contentDirFD = try Sys.open(contentDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        do { linkDirFD = try Sys.open(linkDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) } catch {
            Sys.close(contentDirFD)
            throw error
        }
    }

    deinit {
        Sys.close(contentDirFD)
        Sys.close(linkDirFD)
    }

    package func contentPath(_ d: Digest) -> String { contentDir + "/" + d.hex }

    /// lstat of a read-only link, relative to the link directory (no walk
    /// of the store's path per file); nil when there is none.
    package func linkStat(_ d: Digest) throws -> FileStat? {
        try Sys.lstatIfExists(at: linkDirFD, d.hex, linkDir)
    }

    package func contentStat(_ d: Digest) throws -> FileStat? {
        try Sys.lstatIfExists(at: contentDirFD, d.hex, contentDir)
    }
    package func linkPath(_ d: Digest) -> String { linkDir + "/" + d.hex }

    /// A fresh temporary name in `dir` that no other thread or process uses.
    package static func tempPath(in dir: String, tag: String = "") -> String {
        let n = counter.add(1, ordering: .relaxed).oldValue
        let rnd = cshim_random_u64()
        return "\(dir)/\(tempPrefix)\(Sys.pid)-\(n)-\(String(rnd, radix: 36))\(tag)"
    }

    package static func isTemp(_ name: String) -> Bool { name.hasPrefix(tempPrefix) }

    package struct Ingested: Sendable {
        package var digest: Digest
        package var encodedSize: Int64
        package var logicalSize: Int64
        /// True when this call put the content file in place; false when an
        /// identical one was already there.
        package var created: Bool
        /// The content's place among its batch's renames, when the batch
        /// renames it (`DurableBatch.deferContent`); else -1.
        package var renameOrdinal: Int32 = -1
    }

    /// Encodes the open file into a new content file in one pass (read once,
    /// hashed while written), makes it durable and renames it into place.
    /// `beforePlacing` runs after the last byte was read and may throw to
    /// drop the new file (the source changed meanwhile).
    /// With a batch, a small file is left under its temporary name for the
    /// batch's barrier to make durable and place.
    package func ingest(fd: Int32, size: Int64, sourcePath: String, buffer: UnsafeMutableRawBufferPointer, batch: DurableBatch? = nil,
                onBytes: (Int64) throws -> Void, beforePlacing: () throws -> Void = {}) throws -> Ingested {
        if let batch, size < DurableBatch.deferBelow {
            return try ingestDeferred(fd: fd, size: size, sourcePath: sourcePath, buffer: buffer, batch: batch,
                                      onBytes: onBytes, beforePlacing: beforePlacing)
        }
        var result: SPF1.EncodeResult?
        let placed = try Self.writeNew(in: contentDir, mode: permissions.contentMode) { out, tmp in
            if permissions.group != nil { try permissions.apply(out, mode: permissions.contentMode, tmp) }
            let r = try SPF1.encode(from: fd, size: size, to: out, path: sourcePath, output: tmp, buffer: buffer, onBytes: onBytes)
            try beforePlacing()
            result = r
            let final = contentPath(r.digest)
            // Content already stored: drop the new copy (no fsync needed).
            return try Sys.lstatIfExists(final) != nil ? nil : final
        }
        guard let r = result else { throw SnapshotterError(.internal, "\(sourcePath): encoding produced no result") }
        return Ingested(digest: r.digest, encodedSize: r.encodedSize, logicalSize: size, created: placed)
    }

    private func ingestDeferred(fd: Int32, size: Int64, sourcePath: String, buffer: UnsafeMutableRawBufferPointer,
                                batch: DurableBatch, onBytes: (Int64) throws -> Void,
                                beforePlacing: () throws -> Void) throws -> Ingested {
        let (n, tmp) = batch.newTemp()
        let out = try Sys.openat(contentDirFD, batch.tempName(n), O_WRONLY | O_CREAT | O_EXCL, permissions.contentMode, tmp)
        var keep = false
        defer {
            Sys.close(out)
            if !keep { try? Sys.unlinkIfExists(at: contentDirFD, batch.tempName(n), tmp) }
        }
        if permissions.group != nil { try permissions.apply(out, mode: permissions.contentMode, tmp) }
        let r = try SPF1.encode(from: fd, size: size, to: out, path: sourcePath, output: tmp, buffer: buffer, onBytes: onBytes)
        try beforePlacing()
        // Content already stored (or already in this batch): drop the copy.
        // Not looked up when look-ups find nothing: the barrier's rename
        // finds stored content too (EEXIST), and the temporary is removed.
        var stored = false
        if batch.shouldLookUpStored() {
            stored = try Sys.lstatIfExists(at: contentDirFD, r.digest.hex, contentDir) != nil
            batch.noteLookUp(found: stored)
        }
        let ordinal = stored ? nil : batch.deferContent(n, r.digest)
        keep = ordinal != nil
        // Past Int32 (never, in practice) a rename is not known by its
        // place: the commit then looks at that content.
        return Ingested(digest: r.digest, encodedSize: r.encodedSize, logicalSize: size, created: keep,
                        renameOrdinal: ordinal.flatMap { Int32(exactly: $0) } ?? -1)
    }

    /// Writes a new file under a temporary name in `dir` through `body`,
    /// which returns the final path (or nil to drop the file); the file is
    /// made durable and renamed there unless something already is. Returns
    /// whether it was placed. The temporary file never outlives the call.
    package static func writeNew(in dir: String, mode: mode_t = 0o444,
                         _ body: (_ fd: Int32, _ tmp: String) throws -> String?) throws -> Bool {
        let tmp = tempPath(in: dir)
        let fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode)
        var keep = false
        defer {
            Sys.close(fd)
            if !keep { try? Sys.unlinkIfExists(tmp) }
        }
        guard let final = try body(fd, tmp) else { return false }
        keep = try publish(fd, tmp, as: final)
        return keep
    }

    /// Makes the open temporary file `tmp` durable and renames it to
    /// `final` unless something is there already; returns whether it was
    /// placed (if not, `tmp` is still there for the caller to remove).
    package static func publish(_ fd: Int32, _ tmp: String, as final: String) throws -> Bool {
        try Sys.fsync(fd, tmp)
        return try Sys.renameNoReplace(tmp, final)
    }

    /// Makes `snapshot/xxh3/<hex>` exist for a read-only file: a hard link to
    /// the inode open as `fd` (the one that was hashed, never whatever its
    /// path names now) when they share a filesystem, else a durable copy of
    /// the descriptor's bytes. Returns whether the link is that inode.
    /// With a batch, a small file's new link is made durable by its barrier.
    /// `src` is the descriptor's fstat (of the version that was read).
    package func ensureLink(fd: Int32, _ src: FileStat, what: String, digest: Digest,
                    buffer: UnsafeMutableRawBufferPointer, batch: DurableBatch? = nil) throws -> Bool {
        let final = linkPath(digest)
        let size = Int64(src.st_size)
        switch try Sys.linkOpenFile(fd, at: linkDirFD, digest.hex, path: final, what: what) {
        case .exists:
            guard let st = try linkStat(digest) else { return false }
            return st.st_dev == src.st_dev && st.st_ino == src.st_ino
        case .linked:
            // linkat of /proc/self/fd/N (AT_SYMLINK_FOLLOW) names the open
            // inode itself: no stat needed to know the link is the source.
            // The link names the source's data: make it durable before
            // any record names it.
            if let batch, size < DurableBatch.deferBelow {
                batch.deferLink(digest)
            } else {
                try Sys.fsync(fd, "\(what) (linked as \(final))")
            }
            return true
        case .unavailable:
            // Another filesystem, links not allowed, or no /proc: keep a
            // copy of the bytes that were hashed.
            try copyIntoPlace(fd: fd, size: size, what: what, final: final, buffer: buffer)
            return false
        }
    }

    private func copyIntoPlace(fd: Int32, size: Int64, what: String, final: String,
                               buffer: UnsafeMutableRawBufferPointer) throws {
        _ = try Self.writeNew(in: linkDir) { out, tmp in
            try FileCopy.sparseCopy(from: fd, to: out, size: size, what: what, output: tmp, buffer: buffer)
            // The copy stands in for the source's inode: same mode, owner, times.
            let st = try Sys.fstat(fd, what)
            try Sys.fchmod(out, st.st_mode & 0o7777, tmp)
            if Sys.isRoot { try Sys.fchown(out, st.st_uid, st.st_gid, tmp) }
            try Sys.futimens(out, mtimeNanos: Sys.mtimeNanos(st), tmp)
            return final
        }
    }

    /// Rebuilds a read-only link from its content (decoded and verified),
    /// for content that arrived without its original file.
    package func materializeLink(_ d: Digest, like file: SnapshotFile? = nil, buffer: UnsafeMutableRawBufferPointer) throws {
        let src = contentPath(d)
        let inFD = try Sys.open(src, O_RDONLY)
        defer { Sys.close(inFD) }
        let st = try Sys.fstat(inFD, src)
        try writeLink(d, like: file) { out, _ in
            let r = try SPF1.decode(from: inFD, streamLength: Int64(st.st_size), to: out, name: src, buffer: buffer) { _ in }
            guard r.digest == d else {
                throw SnapshotterError.corrupt("content \(d) is corrupt (hashes to \(r.digest))")
            }
        }
    }

    /// Writes `snapshot/xxh3/<hex>` through `body` (given the open file and
    /// its temporary name), gives it `file`'s metadata, makes it durable and
    /// puts it in place; a link already there is kept.
    package func writeLink(_ d: Digest, like file: SnapshotFile?, _ body: (_ fd: Int32, _ tmp: String) throws -> Void) throws {
        _ = try Self.writeNew(in: linkDir) { out, tmp in
            try body(out, tmp)
            if let file { try Self.applyMetadata(of: file, to: out, path: tmp) }
            return linkPath(d)
        }
    }

    /// Gives an open file a snapshot file's mode, times and (as root) owner.
    package static func applyMetadata(of file: SnapshotFile, to fd: Int32, path: String) throws {
        try Sys.fchmod(fd, mode_t(file.mode), path)
        if Sys.isRoot { try Sys.fchown(fd, file.uid, file.gid, path) }
        try Sys.futimens(fd, mtimeNanos: file.mtimeNanos, path)
    }

    /// Checks and hashes a content file without writing anything.
    package func hashContent(_ d: Digest, buffer: UnsafeMutableRawBufferPointer) throws -> SPF1.DecodeResult {
        let path = contentPath(d)
        let fd = try Sys.open(path, O_RDONLY)
        defer { Sys.close(fd) }
        let st = try Sys.fstat(fd, path)
        return try SPF1.decode(from: fd, streamLength: Int64(st.st_size), to: nil, name: path, buffer: buffer) { _ in }
    }

    /// Hashes a read-only link the way a snapshot would (SPF1 of its bytes).
    /// A link that is not a regular file (a symlink older versions stored
    /// for a symlinked source) is an error, so verify reports it and repair
    /// rebuilds it.
    package func hashLink(_ d: Digest, buffer: UnsafeMutableRawBufferPointer) throws -> Digest {
        let path = linkPath(d)
        let fd = try Sys.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
        defer { Sys.close(fd) }
        let st = try Sys.fstat(fd, path)
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SnapshotterError.corrupt("\(path) is not a regular file")
        }
        let devnull = try Sys.open("/dev/null", O_WRONLY)
        defer { Sys.close(devnull) }
        return try SPF1.encode(from: fd, size: Int64(st.st_size), to: devnull, path: path, buffer: buffer) { _ in }.digest
    }

    package func removeContent(_ d: Digest) throws {
        try Sys.unlinkIfExists(contentPath(d))
        try Sys.unlinkIfExists(linkPath(d))
    }

    /// Through the descriptors held since the store was opened.
    package func syncDirectories() throws {
        try Sys.fsync(contentDirFD, contentDir)
        try Sys.fsync(linkDirFD, linkDir)
    }

    /// Names in the content directory that are content files (not temps).
    package func listContent() throws -> [String] {
        try Directory.names(contentDir).filter { !Self.isTemp($0) }
    }
}

/// Reading directories and copying bytes, hole for hole.
package enum Directory {
    package static func names(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw SnapshotterError.errno(errno, "open directory \(path)") }
        defer { closedir(dir) }
        var result: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name == "." || name == ".." { continue }
            result.append(name)
        }
        return result
    }
}

package enum FileCopy {
    /// Copies `size` bytes, skipping holes, so a sparse file stays sparse.
    /// Write errors name `output` when given.
    package static func sparseCopy(from src: Int32, to dst: Int32, size: Int64, what: String, output: String? = nil,
                           buffer: UnsafeMutableRawBufferPointer) throws {
        try Sys.ftruncate(dst, size, output ?? what)
        for ext in try SPF1.extents(of: src, size: size, path: what) {
            var pos = ext.offset
            let end = ext.offset + ext.length
            while pos < end {
                let want = Int(min(Int64(buffer.count), end - pos))
                let n = try Sys.pread(src, buffer.baseAddress!, want, pos, what)
                if n == 0 { throw SnapshotterError(.io, "\(what) shrank while it was being copied") }
                try Sys.pwriteAll(dst, buffer.baseAddress!, n, pos, output ?? what)
                pos += Int64(n)
            }
        }
    }
}
