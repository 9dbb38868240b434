#if canImport(Glibc)
import Glibc
#endif

/// Where content bytes go between machines (FORMAT.md section 6): every
/// content file (its SPF1 encoding) under the key `xxh3/<hex>`. The engine
/// above this is transport-agnostic.
protocol ContentTransport: Sendable {
    /// Names the remote in errors and in the uploaded-digest memory.
    var remoteID: String { get }
    /// Whether the remote has the digest.
    func has(_ digest: Digest) throws -> Bool
    /// Uploads the content file at `path` under its digest; an object
    /// already there is success.
    func upload(_ digest: Digest, path: String, cancel: CancellationFlag) throws
    /// Downloads the digest into the (new, empty) file `fd` at `tempPath`,
    /// showing `tap` the bytes it writes there (when they pass through this
    /// process) and telling `onBytes` of progress; or puts another file
    /// holding them at `tempPath` instead (see `DownloadedFile`).
    /// Not-found is `.notFound`.
    func download(_ digest: Digest, into fd: Int32, tempPath: String, cancel: CancellationFlag,
                  tap: DownloadTap?, onBytes: @escaping (Int64) -> Void) throws -> DownloadedFile
}

/// Where a download left its bytes.
enum DownloadedFile: Equatable {
    /// In the caller's file.
    case written
    /// In a new file the transport renamed to the temporary name in place
    /// of the caller's (the Dragonfly daemon's hard link to its cache file:
    /// no byte copied); `fd` is that file, read-only, the caller's to close.
    case replaced(fd: Int32)
}

/// Checks a download's bytes as they are written into its file, so they
/// need not be read back: an SPF1 decoder (hashing, and writing a decoded
/// copy when asked) fed in file order. Bytes that arrive out of order (a
/// download that started again) or a file written by someone else (the
/// Dragonfly daemon) leave it without a result, and the file is then
/// checked by reading it. It also starts the file's writeback as it grows,
/// so the fsync at the end has little left to do. Used by one transfer at a
/// time.
final class DownloadTap: @unchecked Sendable {
    private var decoder: SPF1.Decoder
    private let fd: Int32
    private var next: Int64 = 0
    private var outOfOrder = false
    private var failure: SnapshotterError?
    private var unsynced: Int64 = 0
    static let writebackBytes: Int64 = 8 << 20

    init(_ decoder: SPF1.Decoder, file fd: Int32) {
        self.decoder = decoder
        self.fd = fd
    }

    func received(_ bytes: UnsafeRawBufferPointer, at offset: Int64) {
        guard !outOfOrder else { return }
        guard offset == next else { outOfOrder = true; return }
        next += Int64(bytes.count)
        if failure == nil {
            do { try decoder.feed(bytes) } catch { failure = error.asSnapshotterError }
        }
        unsynced += Int64(bytes.count)
        if unsynced >= Self.writebackBytes {
            Sys.startWriteback(fd)
            unsynced = 0
        }
    }

    /// The decoded result when every byte of the `fileSize`-byte file went
    /// through in order (its failure, when the stream is bad); nil when the
    /// file must be read back instead.
    func result(fileSize: Int64) throws -> SPF1.DecodeResult? {
        guard !outOfOrder, next == fileSize else { return nil }
        if let failure { throw failure }
        return try decoder.finish()
    }
}

/// Content transport settings. `url` picks the transport: `s3://bucket`
/// (also `oss`, `obs`, `cos`, `gs`, `abs` through Dragonfly, with
/// `dragonflyEndpoint` set), or
/// `file:///dir` for a plain directory.
public struct ContentSettings: Sendable, Equatable {
    public var url: String
    /// Object storage endpoint, e.g. `http://127.0.0.1:9000` or
    /// `https://s3.eu-west-1.amazonaws.com`.
    public var endpoint: String = ""
    public var region: String = "us-east-1"
    public var accessKeyID: String = ""
    /// Never logged and never put in an error message.
    public var secretAccessKey: String = ""
    public var sessionToken: String = ""
    /// Files downloaded at once during a restore.
    public var downloadConcurrency: Int = 4
    /// Objects at least this large are uploaded in parts.
    public var multipartThreshold: Int64 = 64 << 20
    public var partSize: Int64 = 16 << 20
    public var connectTimeoutSeconds: Double = 10
    public var stallTimeoutSeconds: Double = 30
    /// Resumes and retries after a dropped connection.
    public var retries: Int = 4
    /// The Dragonfly peer daemon's socket, `unix:///path`; empty: no
    /// Dragonfly (the object storage or directory of `url` directly).
    public var dragonflyEndpoint: String = ""
    /// Use the object storage directly (s3:// only) when the daemon cannot
    /// be reached.
    public var dragonflyFallback: Bool = false
    /// Persistent replicas the daemon is asked to keep of each upload.
    public var replicas: UInt64 = 3
    /// Time to live of uploaded tasks in seconds; 0: the daemon's default.
    public var ttlSeconds: Int64 = 0

    public init(url: String) { self.url = url }

    var scheme: String { url.split(separator: ":").first.map(String.init) ?? "" }

    /// The bucket of an object-storage URL (`s3://bucket[/prefix]`).
    var bucket: String {
        let rest = url.dropFirst(scheme.count + 3)
        return String(rest.split(separator: "/", omittingEmptySubsequences: true).first ?? "")
    }
}

func makeTransport(_ settings: ContentSettings) throws -> any ContentTransport {
    if !settings.dragonflyEndpoint.isEmpty {
        if settings.url.isEmpty {
            do { _ = try GRPCTarget.parse(settings.dragonflyEndpoint) } catch let e as SnapshotterError {
                throw SnapshotterError.invalid("Dragonfly endpoint: \(e.message)")
            }
            return MissingObjectStorage(settings.dragonflyEndpoint)
        }
        return try DragonflyTransport(settings)
    }
    switch settings.scheme {
    case "file":
        return try DirectoryTransport(settings)
    case "s3":
        return try S3Transport(settings)
    default:
        throw SnapshotterError.invalid("content URL \(settings.url.debugDescription) must be s3://bucket or file:///dir (\(settings.scheme):// object storage is reached through a Dragonfly endpoint)")
    }
}

/// A directory as the remote: `<dir>/xxh3/<hex>`, written temp + rename.
final class DirectoryTransport: ContentTransport {
    let dir: String
    var remoteID: String { "file://" + dir }

    init(_ settings: ContentSettings) throws {
        let path = String(settings.url.dropFirst("file://".count))
        guard path.hasPrefix("/") else {
            throw SnapshotterError.invalid("content URL \(settings.url.debugDescription) must be file:///absolute/path")
        }
        dir = path + "/xxh3"
    }

    func has(_ digest: Digest) throws -> Bool {
        try Sys.lstatIfExists(dir + "/" + digest.hex) != nil
    }

    func upload(_ digest: Digest, path: String, cancel: CancellationFlag) throws {
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

    func download(_ digest: Digest, into fd: Int32, tempPath: String, cancel: CancellationFlag,
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
