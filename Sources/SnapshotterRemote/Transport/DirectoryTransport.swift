#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// A directory as the remote: `<dir>/xxh3/<hex>`, written temp + rename.
package final class DirectoryTransport: ContentTransport {
    package let dir: String
    package var remoteID: String { "file://" + dir }

    package init(_ settings: ContentSettings) throws {
        let path = String(settings.url.dropFirst("file://".count))
        guard path.hasPrefix("/") else {
            throw SnapshotterError.invalid("content URL \(settings.url.debugDescription) must be file:///absolute/path")
        }
        dir = path + "/xxh3"
    }

    package func has(_ digest: Digest) throws -> Bool {
        try Sys.lstatIfExists(dir + "/" + digest.hex) != nil
    }

    package func upload(_ digest: Digest, path: String, cancel: CancellationFlag) throws {
        try Sys.mkdirs(dir)
        let final = dir + "/" + digest.hex
        if try Sys.lstatIfExists(final) != nil { return }
        let src = try Sys.open(path, O_RDONLY)
        defer { Sys.close(src) }
        let size = Int64(try Sys.fstat(src, path).st_size)
        let placed = try ContentStore.writeNew(in: dir) { out, tmp in
            try copy(from: src, path: path, size: size, to: out, target: tmp, cancel: cancel) { _, _ in }
            return final
        }
        if placed { try Sys.fsyncDirectory(dir) }
    }

    /// Copies `size` bytes between open files, checking for cancellation
    /// between chunks and showing `onData` each chunk and its offset.
    private func copy(from src: Int32, path: String, size: Int64, to out: Int32, target: String,
                      cancel: CancellationFlag, onData: (UnsafeRawBufferPointer, Int64) -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SPF1.chunkSize, alignment: 4096)
        defer { buffer.deallocate() }
        var off: Int64 = 0
        while off < size {
            try cancel.check()
            let n = try Sys.pread(src, buffer.baseAddress!, Int(min(Int64(buffer.count), size - off)), off, path)
            if n == 0 { break }
            try Sys.pwriteAll(out, buffer.baseAddress!, n, off, target)
            onData(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: n), off)
            off += Int64(n)
        }
    }

    package func download(_ digest: Digest, into fd: Int32, tempPath: String, cancel: CancellationFlag,
                  tap: DownloadTap?, onBytes: @escaping (Int64) -> Void) throws -> DownloadedFile {
        let path = dir + "/" + digest.hex
        let src: Int32
        do { src = try Sys.open(path, O_RDONLY) } catch let e as SnapshotterError where e.code == .notFound {
            throw SnapshotterError(.notFound, "content \(digest) is not in \(remoteID)")
        }
        defer { Sys.close(src) }
        let size = Int64(try Sys.fstat(src, path).st_size)
        try copy(from: src, path: path, size: size, to: fd, target: tempPath, cancel: cancel) { bytes, offset in
            tap?.received(bytes, at: offset)
            onBytes(Int64(bytes.count))
        }
        return .written
    }
}
