#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

/// One download per digest at a time in this process: a second restore
/// that needs the same digest waits for the first one's download.
final class SingleFlight: Sendable {
    private let running = Locked<[Digest: Task<Void, Error>]>([:])

    func run(_ d: Digest, _ body: @escaping @Sendable () async throws -> Void) async throws {
        let (task, mine) = running.withLock { map -> (Task<Void, Error>, Bool) in
            if let t = map[d] { return (t, false) }
            let t = Task { try await body() }
            map[d] = t
            return (t, true)
        }
        defer { if mine { running.withLock { _ = $0.removeValue(forKey: d) } } }
        try await task.value
    }
}

extension Snapshotter {
    /// Makes sure the remote has every digest before anything names them:
    /// each is checked (HEAD), and uploaded when missing, however often it
    /// was uploaded before (a remote may lose objects; nothing local can
    /// tell). Checks and uploads run `downloadConcurrency` at a time.
    func upload(_ digests: [Digest], to transport: any ContentTransport, reporter: ProgressReporter,
                cancel: CancellationFlag) async throws {
        let all = Array(Set(digests))
        guard !all.isEmpty else { return }
        reporter.begin(.uploading, filesTotal: 0, bytesTotal: 0)
        let sent = Locked<(files: Int, bytes: Int64)>((0, 0))
        let width = max(1, options.content?.downloadConcurrency ?? 4)
        try await forEachConcurrently(all, limit: width, pool: pool, cancel: cancel, bufferSize: 4096) { d, _ in
            do {
                if try transport.has(d) { return }
                let path = self.store.contentPath(d)
                let size = Int64((try? Sys.lstatIfExists(path))??.st_size ?? 0)
                try transport.upload(d, path: path, cancel: cancel)
                sent.withLock { $0 = ($0.files + 1, $0.bytes + size) }
            } catch let e as SnapshotterError where e.code != .canceled {
                throw e.context("snapshot: uploading content")
            }
        }
        let (files, bytes) = sent.withLock { $0 }
        Log.info("\(transport.remoteID) has the \(all.count) content files of the snapshot: \(files) uploaded now (\(bytes) bytes)")
    }
}
