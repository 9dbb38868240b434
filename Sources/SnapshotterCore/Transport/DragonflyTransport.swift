#if SNAPSHOTTER_DRAGONFLY
#if canImport(Glibc)
import Glibc
#endif
import CShim
import DragonflyAPI
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Synchronization

/// Content through the Dragonfly peer daemon (dfdaemon), a gRPC client of
/// `dfdaemon.v2.DfdaemonDownload` on a Unix socket (DRAGONFLY.md). Objects
/// are persistent tasks with the URL `<provider>://<bucket>/xxh3/<hex>`,
/// backed by the object storage of the settings.
///
/// The protocol is synchronous and called on the blocking pool's threads:
/// every gRPC call runs in a detached task and the pool thread waits on a
/// condition variable, so Swift's cooperative pool is never blocked.
///
/// When the fallback is on (and the URL is s3://) the S3 transport is used
/// directly whenever the daemon cannot be reached. `has` asks object
/// storage (the daemon has no cheap existence check); without credentials
/// it answers false, and the upload's ALREADY_EXISTS makes that harmless.
final class DragonflyTransport: ContentTransport {
    let settings: ContentSettings
    let endpoint: String
    private let socketPath: String
    private let provider: String
    private let bucket: String
    /// Object storage directly: for `has`, and for the fallback.
    private let s3: S3Transport?
    private let fallback: Bool
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let ready = Locked(false)

    static let providers: Set<String> = ["s3", "oss", "obs", "cos", "gs", "abs"]
    static let service = "dfdaemon.v2.DfdaemonDownload"

    var remoteID: String { "dragonfly+\(provider)://\(bucket)@\(settings.endpoint)" }

    init(_ settings: ContentSettings) throws {
        self.settings = settings
        endpoint = settings.dragonflyEndpoint
        guard endpoint.hasPrefix("unix://"), endpoint.dropFirst("unix://".count).hasPrefix("/") else {
            throw SnapshotterError.invalid("Dragonfly endpoint \(endpoint.debugDescription) must be unix:///absolute/path/to/dfdaemon.sock")
        }
        socketPath = String(endpoint.dropFirst("unix://".count))
        provider = settings.scheme
        guard Self.providers.contains(provider) else {
            throw SnapshotterError.invalid("content URL \(settings.url.debugDescription) must name object storage for Dragonfly: s3://, oss://, obs://, cos://, gs:// or abs:// and a bucket")
        }
        bucket = settings.bucket
        guard !bucket.isEmpty else { throw SnapshotterError.invalid("content URL \(settings.url.debugDescription) names no bucket") }
        guard settings.replicas >= 1 else { throw SnapshotterError.invalid("Dragonfly replica count must be at least 1") }
        guard settings.ttlSeconds >= 0 else { throw SnapshotterError.invalid("Dragonfly TTL must not be negative") }
        if provider == "s3", !settings.accessKeyID.isEmpty, !settings.secretAccessKey.isEmpty {
            s3 = try S3Transport(settings)
        } else {
            s3 = nil
        }
        if settings.dragonflyFallback && s3 == nil {
            throw SnapshotterError.invalid("the Dragonfly fallback needs s3:// object storage with an access key id and a secret access key")
        }
        fallback = settings.dragonflyFallback
        let transport = try HTTP2ClientTransport.Posix(
            target: .unixDomainSocket(path: socketPath, authority: "localhost"),
            transportSecurity: .plaintext)
        let client = GRPCClient(transport: transport)
        self.client = client
        Task.detached { try? await client.runConnections() }
    }

    deinit { client.beginGracefulShutdown() }

    private func url(_ d: Digest) -> String { "\(provider)://\(bucket)/xxh3/\(d.hex)" }

    private var objectStorage: Common_V2_ObjectStorage {
        var o = Common_V2_ObjectStorage()
        o.region = settings.region
        o.endpoint = settings.endpoint
        if !settings.accessKeyID.isEmpty { o.accessKeyID = settings.accessKeyID }
        if !settings.secretAccessKey.isEmpty { o.accessKeySecret = settings.secretAccessKey }
        if !settings.sessionToken.isEmpty { o.sessionToken = settings.sessionToken }
        return o
    }

    // MARK: the three operations

    func has(_ digest: Digest) throws -> Bool {
        guard let s3 else { return false }
        return try s3.has(digest)
    }

    func upload(_ digest: Digest, path: String, cancel: CancellationFlag) throws {
        let what = "upload \(digest) through Dragonfly (\(endpoint))"
        if let s3 = try fallbackIfUnreachable(what) {
            return try s3.upload(digest, path: path, cancel: cancel)
        }
        var req = Dfdaemon_V2_UploadPersistentTaskRequest()
        req.url = url(digest)
        req.objectStorage = objectStorage
        req.path = path
        req.persistentReplicaCount = settings.replicas
        if settings.ttlSeconds > 0 { req.ttl = Google_Protobuf_Duration(seconds: settings.ttlSeconds) }
        let client = self.client
        let request = req
        do {
            _ = try blocking(cancel: cancel) {
                try await Dfdaemon_V2_DfdaemonDownload.Client(wrapping: client).uploadPersistentTask(request) { r in
                    _ = try r.message
                    return true
                }
            }
        } catch let e as RPCError where e.code == .alreadyExists {
            return
        } catch {
            let failure = classify(error, what: what, digest: digest, download: false)
            if fallback, let s3, failure.code == .transport, !isReachable() {
                Log.info("\(what): the daemon cannot be reached; uploading to \(s3.remoteID) directly")
                return try s3.upload(digest, path: path, cancel: cancel)
            }
            throw failure
        }
    }

    func download(_ digest: Digest, into fd: Int32, tempPath: String, cancel: CancellationFlag,
                  tap: DownloadTap?, onBytes: @escaping (Int64) -> Void) throws {
        let what = "download \(digest) through Dragonfly (\(endpoint))"
        if let s3 = try fallbackIfUnreachable(what) {
            return try s3.download(digest, into: fd, tempPath: tempPath, cancel: cancel, tap: tap, onBytes: onBytes)
        }
        // The daemon creates the output itself (a hard link to its task
        // file, so on the same file system, and it must not exist yet);
        // the engine holds `fd` on `tempPath`, so the bytes are copied in
        // once the stream has ended OK.
        let output = tempPath + ".df"
        try? Sys.unlinkIfExists(output)
        defer { try? Sys.unlinkIfExists(output) }
        var req = Dfdaemon_V2_DownloadPersistentTaskRequest()
        req.url = url(digest)
        req.objectStorage = objectStorage
        req.persistent = true
        req.outputPath = output
        req.forceHardLink = true
        req.needPieceContent = false
        let request = req
        let client = self.client
        let progress = ProgressBox(onBytes)
        let messages = Locked(0)
        // A daemon that keeps the stream open but sends nothing for the
        // stall timeout fails the download (it would otherwise hang until
        // canceled).
        let stall = Stall(seconds: settings.stallTimeoutSeconds)
        do {
            _ = try blocking(cancel: cancel, stall: stall) {
                try await Dfdaemon_V2_DfdaemonDownload.Client(wrapping: client).downloadPersistentTask(request) { response in
                    for try await message in response.messages {
                        stall.touch()
                        messages.withLock { $0 += 1 }
                        if case .downloadPieceFinishedResponse(let p)? = message.response {
                            progress.add(try DaemonNumbers.pieceLength(p.piece.length, what: what))
                        }
                        if cancel.isCanceled { throw CancellationError() }
                    }
                    return true
                }
            }
        } catch is StalledError {
            throw SnapshotterError(.transport, "\(what): the Dragonfly daemon at \(endpoint) sent nothing for \(settings.stallTimeoutSeconds) s (after \(messages.withLock { $0 }) messages); the download is incomplete")
        } catch {
            let failure = classify(error, what: what, digest: digest, download: true)
            if fallback, let s3, failure.code == .transport, !isReachable() {
                Log.info("\(what): the daemon cannot be reached (\(failure.message)); downloading from \(s3.remoteID) directly")
                try cancel.check()
                guard ftruncate(fd, 0) == 0 else { throw SnapshotterError(.io, "truncate \(tempPath): \(String(cString: strerror(errno)))") }
                return try s3.download(digest, into: fd, tempPath: tempPath, cancel: cancel, tap: tap, onBytes: onBytes)
            }
            let got = messages.withLock { $0 }
            if failure.code == .transport && got > 0 {
                throw SnapshotterError(.transport, "\(failure.message) (the stream broke after \(got) messages; the download is incomplete)")
            }
            throw failure
        }
        try cancel.check()
        try copy(from: output, into: fd, tempPath: tempPath, tap: tap)
    }

    // MARK: reaching the daemon

    /// The S3 transport to use instead of the daemon when the fallback is
    /// on and the daemon cannot be reached; nil to go through the daemon.
    /// Without the fallback an unreachable daemon is an error naming it.
    private func fallbackIfUnreachable(_ what: String) throws -> S3Transport? {
        if ready.withLock({ $0 }) { return nil }
        do {
            try checkHealth()
            ready.withLock { $0 = true }
            return nil
        } catch let e as SnapshotterError {
            if fallback, let s3 {
                Log.info("\(what): \(e.message); using \(s3.remoteID) directly")
                return s3
            }
            throw e.context(what)
        }
    }

    private func isReachable() -> Bool {
        do {
            try checkHealth()
            return true
        } catch {
            ready.withLock { $0 = false }
            return false
        }
    }

    /// grpc.health.v1 Health/Check for the download service.
    private func checkHealth() throws {
        guard (try? Sys.lstatIfExists(socketPath)) ?? nil != nil else {
            throw SnapshotterError(.transport, "the Dragonfly daemon at \(endpoint) cannot be reached: \(socketPath) does not exist (is dfdaemon running?)")
        }
        var req = Grpc_Health_V1_HealthCheckRequest()
        req.service = Self.service
        let request = req
        let client = self.client
        var options = CallOptions.defaults
        options.timeout = .milliseconds(Int64(Int.clamped(settings.connectTimeoutSeconds * 1000, 100, 86_400_000)))
        options.waitForReady = false
        let opts = options
        let status: Grpc_Health_V1_HealthCheckResponse.ServingStatus
        do {
            status = try blocking(cancel: nil) {
                try await Grpc_Health_V1_Health.Client(wrapping: client).check(request, options: opts) { try $0.message.status }
            }
        } catch let e as RPCError {
            throw SnapshotterError(.transport, "the Dragonfly daemon at \(endpoint) cannot be reached: \(e.code): \(e.message)")
        } catch {
            throw SnapshotterError(.transport, "the Dragonfly daemon at \(endpoint) cannot be reached: \(error)")
        }
        guard status == .serving else {
            throw SnapshotterError(.transport, "the Dragonfly daemon at \(endpoint) is not serving \(Self.service) (health: \(status))")
        }
    }

    /// A clear error: not found (for a download: NOT_FOUND, or the daemon's
    /// INTERNAL for a missing object), canceled, or a transport error
    /// naming the daemon.
    private func classify(_ error: Error, what: String, digest: Digest, download: Bool) -> SnapshotterError {
        if let e = error as? SnapshotterError { return e }
        if error is CancellationError { return .canceled }
        guard let e = error as? RPCError else {
            return SnapshotterError(.transport, "\(what): \(error)")
        }
        let lower = e.message.lowercased()
        switch e.code {
        case .notFound where download:
            return SnapshotterError(.notFound, "content \(digest) is not in \(remoteID): \(e.message)")
        case .internalError where download && (lower.contains("not found") || lower.contains("notfound") || lower.contains("no such")):
            return SnapshotterError(.notFound, "content \(digest) is not in \(remoteID): \(e.message)")
        case .cancelled:
            return .canceled
        case .unavailable:
            return SnapshotterError(.transport, "\(what): the Dragonfly daemon at \(endpoint) is unavailable: \(e.message)")
        default:
            return SnapshotterError(.transport, "\(what): the Dragonfly daemon at \(endpoint) answered \(e.code): \(e.message)")
        }
    }

    // MARK: helpers

    /// Copies the daemon's finished output into the engine's file.
    private func copy(from output: String, into fd: Int32, tempPath: String, tap: DownloadTap?) throws {
        let src = try Sys.open(output, O_RDONLY)
        defer { Sys.close(src) }
        let size = Int64(try Sys.fstat(src, output).st_size)
        var inOff: Int64 = 0
        var outOff: Int64 = 0
        // Without a tap the kernel copies; with one the bytes are read here
        // and checked on the way (the engine then need not read them back).
        copying: while inOff < size && tap == nil {
            let n = cshim_copy_file_range(src, &inOff, fd, &outOff, Int(min(size - inOff, 1 << 30)))
            if n > 0 { continue }
            if n == 0 { break }
            if errno == EINTR { continue }
            break copying  // not supported here: plain reads and writes
        }
        if inOff < size {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SPF1.chunkSize, alignment: 4096)
            defer { buffer.deallocate() }
            while inOff < size {
                let r = try Sys.pread(src, buffer.baseAddress!, Int(min(Int64(buffer.count), size - inOff)), inOff, output)
                if r == 0 { break }
                try Sys.pwriteAll(fd, buffer.baseAddress!, r, outOff, tempPath)
                tap?.received(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: r), at: outOff)
                inOff += Int64(r)
                outOff += Int64(r)
            }
        }
        guard outOff == size else {
            throw SnapshotterError(.transport, "copy \(output) to \(tempPath): \(outOff) of \(size) bytes")
        }
    }
}

/// The engine's progress callback, called from the gRPC task.
private final class ProgressBox: @unchecked Sendable {
    let onBytes: (Int64) -> Void
    init(_ onBytes: @escaping (Int64) -> Void) { self.onBytes = onBytes }
    func add(_ n: Int64) { onBytes(n) }
}

/// Runs `body` in a detached task and waits for it on this (blocking pool)
/// thread with a condition variable; the cancel flag, polled while
/// waiting, cancels the task.
func blocking<T: Sendable>(cancel: CancellationFlag?, stall: Stall? = nil,
                            _ body: @escaping @Sendable () async throws -> T) throws -> T {
    let waiter = Waiter<T>()
    let task = Task.detached {
        let r: Result<T, Error>
        do { r = .success(try await body()) } catch { r = .failure(error) }
        waiter.finish(r)
    }
    var canceled = false
    var stalled = false
    while true {
        if let r = waiter.wait(milliseconds: 100) {
            if stalled, case .failure = r { throw StalledError() }
            return try r.get()
        }
        if !canceled, cancel?.isCanceled == true {
            canceled = true
            task.cancel()
        }
        if !canceled, let stall, stall.expired {
            canceled = true
            stalled = true
            task.cancel()
        }
    }
}

/// When a call last showed signs of life; `expired` once it has been quiet
/// for longer than its limit.
final class Stall: Sendable {
    private let limitNanos: UInt64
    private let last = Atomic<UInt64>(Sys.monotonicNanos())

    init(seconds: Double) { limitNanos = UInt64(Int64.nanos(seconds: max(0.1, seconds))) }

    func touch() { last.store(Sys.monotonicNanos(), ordering: .relaxed) }

    var expired: Bool { Sys.monotonicNanos() &- last.load(ordering: .relaxed) > limitNanos }
}

/// A call `blocking` ended because it stalled.
struct StalledError: Error {}

private final class Waiter<T: Sendable>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var result: Result<T, Error>?

    init() {
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func finish(_ r: Result<T, Error>) {
        pthread_mutex_lock(mutex)
        result = r
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }

    /// The result, or nil after `milliseconds` without one.
    func wait(milliseconds: Int) -> Result<T, Error>? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if result == nil {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            let ns = Int(ts.tv_nsec) + milliseconds * 1_000_000
            ts.tv_sec += ns / 1_000_000_000
            ts.tv_nsec = ns % 1_000_000_000
            while result == nil {
                if pthread_cond_timedwait(cond, mutex, &ts) == ETIMEDOUT { break }
            }
        }
        return result
    }
}
#endif
