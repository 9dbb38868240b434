#if canImport(Glibc)
import Glibc
#endif
import CShim
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// Content through the Dragonfly peer daemon (dfdaemon): a gRPC client of
/// `dfdaemon.v2.DfdaemonDownload` (DRAGONFLY.md) over libcurl (GRPC.swift),
/// on its Unix socket or a TCP target. Objects are persistent tasks with
/// the URL `<provider>://<bucket>/xxh3/<hex>`, backed by the object storage
/// of the settings. Synchronous, called on the blocking pool's threads.
///
/// A download asks the daemon for a hard link to its cache file next to
/// the engine's temporary file and hands that file to the engine in place
/// of its own (nothing copied); the engine verifies it by reading it.
///
/// When the fallback is on (and the URL is s3://) the S3 transport is used
/// directly whenever the daemon cannot be reached. `has` asks object
/// storage (the daemon has no cheap existence check); without credentials
/// it answers false, and the upload's ALREADY_EXISTS makes that harmless.
package final class DragonflyTransport: ContentTransport {
    package let settings: ContentSettings
    package let endpoint: String
    private let target: GRPCTarget
    private let channel: GRPCChannel
    private let provider: String
    private let bucket: String
    private let storage: DaemonMessages.ObjectStorage
    /// Object storage directly: for `has`, and for the fallback.
    private let s3: S3Transport?
    private let fallback: Bool
    private let ready = Locked(false)
    /// The daemon could not hard-link its cache file into the store (its
    /// cache is on another file system): it is asked to copy instead.
    private let linkFails = Locked(false)

    package static let providers: Set<String> = ["s3", "oss", "obs", "cos", "gs", "abs"]
    package static let service = "dfdaemon.v2.DfdaemonDownload"

    package var remoteID: String { "dragonfly+\(provider)://\(bucket)@\(settings.endpoint)" }

    package init(_ settings: ContentSettings) throws {
        self.settings = settings
        endpoint = settings.dragonflyEndpoint
        do {
            target = try GRPCTarget.parse(endpoint)
        } catch let e as SnapshotterError {
            throw SnapshotterError.invalid("Dragonfly endpoint: \(e.message)")
        }
        channel = GRPCChannel(target)
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
        storage = DaemonMessages.ObjectStorage(region: settings.region, endpoint: settings.endpoint,
                                               accessKeyID: settings.accessKeyID, accessKeySecret: settings.secretAccessKey,
                                               sessionToken: settings.sessionToken)
    }

    private func url(_ d: Digest) -> String { "\(provider)://\(bucket)/xxh3/\(d.hex)" }

    private func options(cancel: CancellationFlag?, stallSeconds: Double, timeoutMs: Int = 0) -> GRPCChannel.CallOptions {
        var o = GRPCChannel.CallOptions()
        o.connectTimeoutMs = Int.clamped(settings.connectTimeoutSeconds * 1000, 100, 86_400_000)
        o.timeoutMs = timeoutMs
        o.stallSeconds = stallSeconds
        if let cancel { o.shouldAbort = { cancel.isCanceled } }
        return o
    }

    private var stallSeconds: Double { min(max(settings.stallTimeoutSeconds, 0.1), 86_400) }

    // MARK: the three operations

    package func has(_ digest: Digest) throws -> Bool {
        guard let s3 else { return false }
        return try s3.has(digest)
    }

    package func upload(_ digest: Digest, path: String, cancel: CancellationFlag) throws {
        let what = "upload \(digest) through Dragonfly (\(endpoint))"
        if let s3 = try fallbackIfUnreachable(what) {
            return try s3.upload(digest, path: path, cancel: cancel)
        }
        let request = DaemonMessages.uploadPersistentTaskRequest(
            url: url(digest), objectStorage: storage, path: path, replicas: settings.replicas, ttlSeconds: settings.ttlSeconds)
        do {
            // The answer comes once the object is in object storage, which
            // may take long with nothing moving: no stall limit.
            try channel.call("/\(Self.service)/UploadPersistentTask", request, options(cancel: cancel, stallSeconds: 0)) { _ in }
        } catch let e as GRPCStatusError where e.code == GRPCStatusError.alreadyExists {
            return
        } catch {
            let failure = classify(error, what: what, digest: digest, download: false, messages: 0)
            if fallback, let s3, failure.code == .transport, !isReachable() {
                Log.info("\(what): the daemon cannot be reached; uploading to \(s3.remoteID) directly")
                return try s3.upload(digest, path: path, cancel: cancel)
            }
            throw failure
        }
    }

    package func download(_ digest: Digest, into fd: Int32, tempPath: String, cancel: CancellationFlag,
                  tap: DownloadTap?, onBytes: @escaping (Int64) -> Void) throws -> DownloadedFile {
        let what = "download \(digest) through Dragonfly (\(endpoint))"
        if let s3 = try fallbackIfUnreachable(what) {
            return try s3.download(digest, into: fd, tempPath: tempPath, cancel: cancel, tap: tap, onBytes: onBytes)
        }
        // The daemon creates the output itself (it must not exist yet), as
        // a hard link to its task file: on the same file system only.
        let output = tempPath + ".df"
        try? Sys.unlinkIfExists(output)
        defer { try? Sys.unlinkIfExists(output) }
        var messages = 0
        do {
            do {
                try stream(digest, output: output, forceLink: !linkFails.withLock { $0 }, cancel: cancel,
                           messages: &messages, onBytes: onBytes, what: what)
            } catch let e as GRPCStatusError where e.code == GRPCStatusError.internalError && messages == 0
                        && !Self.saysNotFound(e.message) && !linkFails.withLock({ $0 }) {
                // Most likely its cache is on another file system: it copies.
                linkFails.withLock { $0 = true }
                Log.info("\(what): the daemon could not hard-link its cache file into \(tempPath)'s directory (\(e.message)); asking it to copy the file instead (the daemon's cache on another file system costs a copy per download)")
                try? Sys.unlinkIfExists(output)
                try stream(digest, output: output, forceLink: false, cancel: cancel, messages: &messages,
                           onBytes: onBytes, what: what)
            }
        } catch {
            let failure = classify(error, what: what, digest: digest, download: true, messages: messages)
            if fallback, let s3, failure.code == .transport, !isReachable() {
                Log.info("\(what): the daemon cannot be reached (\(failure.message)); downloading from \(s3.remoteID) directly")
                try cancel.check()
                try Sys.ftruncate(fd, 0, tempPath)
                return try s3.download(digest, into: fd, tempPath: tempPath, cancel: cancel, tap: tap, onBytes: onBytes)
            }
            throw failure
        }
        try cancel.check()
        return try adopt(output, as: tempPath, or: fd, tap: tap)
    }

    /// One DownloadPersistentTask call to its OK end, counting messages and
    /// reporting each finished piece's length.
    private func stream(_ digest: Digest, output: String, forceLink: Bool, cancel: CancellationFlag,
                        messages: inout Int, onBytes: @escaping (Int64) -> Void, what: String) throws {
        let request = DaemonMessages.downloadPersistentTaskRequest(
            url: url(digest), objectStorage: storage, outputPath: output, persistent: true,
            forceHardLink: forceLink, needPieceContent: false)
        let counter = Locked(0)
        defer { messages = counter.withLock { $0 } }
        try channel.call("/\(Self.service)/DownloadPersistentTask", request,
                         options(cancel: cancel, stallSeconds: stallSeconds)) { bytes in
            counter.withLock { $0 += 1 }
            if case .pieceFinished(let length) = try DaemonMessages.downloadPersistentTaskResponse(bytes) {
                onBytes(try DaemonNumbers.pieceLength(length, what: what))
            }
        }
    }

    /// Puts the daemon's finished output at `tempPath` in place of the
    /// engine's empty file, when this process owns it (then the daemon's
    /// user could write the store anyway, so sharing the inode gives it
    /// nothing); otherwise copies its bytes into `fd`.
    private func adopt(_ output: String, as tempPath: String, or fd: Int32, tap: DownloadTap?) throws -> DownloadedFile {
        let src = try Sys.open(output, O_RDONLY | cshim_o_nofollow())
        var keep = false
        defer { if !keep { Sys.close(src) } }
        let st = try Sys.fstat(src, output)
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw SnapshotterError(.transport, "the Dragonfly daemon's output \(output) is not a regular file")
        }
        if st.st_uid == geteuid() {
            try Sys.rename(output, tempPath)
            keep = true
            return .replaced(fd: src)
        }
        try copy(from: src, output, size: Int64(st.st_size), into: fd, tempPath: tempPath, tap: tap)
        return .written
    }

    package static func saysNotFound(_ message: String) -> Bool {
        let lower = message.lowercased()
        return lower.contains("not found") || lower.contains("notfound") || lower.contains("no such")
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

    /// grpc.health.v1 Health/Check for the download service, within the
    /// connect timeout.
    private func checkHealth() throws {
        let unreachable = "the Dragonfly daemon at \(endpoint) cannot be reached"
        if let path = target.socketPath, (try? Sys.lstatIfExists(path)) ?? nil == nil {
            throw SnapshotterError(.transport, "\(unreachable): \(path) does not exist (is dfdaemon running?)")
        }
        let o = options(cancel: nil, stallSeconds: 0, timeoutMs: Int.clamped(settings.connectTimeoutSeconds * 1000, 100, 86_400_000))
        let status: DaemonMessages.ServingStatus
        do {
            let answer = try channel.unary("/grpc.health.v1.Health/Check", DaemonMessages.healthCheckRequest(service: Self.service), o)
            status = try answer.withUnsafeBytes { try DaemonMessages.healthCheckResponse($0) }
        } catch let e as GRPCStatusError {
            throw SnapshotterError(.transport, "\(unreachable): \(e)")
        } catch let e as GRPCTransportError {
            throw SnapshotterError(.transport, "\(unreachable): \(e.message)")
        } catch let e as SnapshotterError {
            throw SnapshotterError(.transport, "\(unreachable): \(e.message)")
        }
        guard status == .serving else {
            throw SnapshotterError(.transport, "the Dragonfly daemon at \(endpoint) is not serving \(Self.service) (health: \(status))")
        }
    }

    /// A clear error: not found (for a download: NOT_FOUND, or the daemon's
    /// INTERNAL for a missing object), canceled, or a transport error
    /// naming the daemon (and, for a download that broke, how far it got).
    private func classify(_ error: Error, what: String, digest: Digest, download: Bool, messages: Int) -> SnapshotterError {
        let incomplete = download ? " (the stream broke after \(messages) messages; the download is incomplete)" : ""
        switch error {
        case let e as SnapshotterError:
            return e.code == .transport ? SnapshotterError(.transport, "\(what): \(e.message)\(incomplete)") : e
        case let e as GRPCTransportError where e.timedOut && download:
            return SnapshotterError(.transport, "\(what): the Dragonfly daemon at \(endpoint) sent nothing for \(settings.stallTimeoutSeconds) s (after \(messages) messages); the download is incomplete")
        case let e as GRPCTransportError:
            return SnapshotterError(.transport, "\(what): the Dragonfly daemon at \(endpoint) cannot be reached or broke the call: \(e.message)\(messages > 0 ? incomplete : "")")
        case let e as GRPCStatusError:
            switch e.code {
            case GRPCStatusError.notFound where download,
                 GRPCStatusError.internalError where download && Self.saysNotFound(e.message):
                return SnapshotterError(.notFound, "content \(digest) is not in \(remoteID): \(e.message)")
            case GRPCStatusError.cancelled:
                return .canceled
            case GRPCStatusError.unavailable:
                return SnapshotterError(.transport, "\(what): the Dragonfly daemon at \(endpoint) is unavailable: \(e.message)\(messages > 0 ? incomplete : "")")
            default:
                return SnapshotterError(.transport, "\(what): the Dragonfly daemon at \(endpoint) answered \(e)")
            }
        default:
            return SnapshotterError(.transport, "\(what): \(error)")
        }
    }

    // MARK: helpers

    /// Copies the daemon's finished output into the engine's file. Without
    /// a tap the kernel copies; with one the bytes are read here and
    /// checked on the way (the engine then need not read them back).
    private func copy(from src: Int32, _ output: String, size: Int64, into fd: Int32, tempPath: String, tap: DownloadTap?) throws {
        guard let tap else { return try Sys.copyAll(from: src, output, to: fd, tempPath) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SPF1.chunkSize, alignment: 4096)
        defer { buffer.deallocate() }
        guard let base = buffer.baseAddress else { throw SnapshotterError(.internal, "no copy buffer") }
        var offset: Int64 = 0
        while offset < size {
            let r = try Sys.pread(src, base, Int(min(Int64(buffer.count), size - offset)), offset, output)
            if r == 0 { break }
            try Sys.pwriteAll(fd, base, r, offset, tempPath)
            tap.received(UnsafeRawBufferPointer(start: base, count: r), at: offset)
            offset += Int64(r)
        }
        guard offset == size else {
            throw SnapshotterError(.transport, "copy \(output) to \(tempPath): \(offset) of \(size) bytes")
        }
    }
}
