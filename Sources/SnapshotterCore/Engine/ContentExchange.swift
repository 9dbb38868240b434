#if canImport(Glibc)
import Glibc
#endif

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
    /// Uploads content the remote does not have yet. Digests known to be
    /// there (from an earlier upload or check) are not asked about again.
    func upload(_ digests: [Digest], to transport: any ContentTransport, reporter: ProgressReporter,
                cancel: CancellationFlag) async throws {
        let remote = transport.remoteID
        let todo = try await pool.run {
            try self.meta.env.read { txn in
                try digests.filter { try !txn.contains(self.meta.uploaded, MetadataStore.uploadedKey(remote, $0)) }
            }
        }
        guard !todo.isEmpty else { return }
        var bytes: Int64 = 0
        for d in todo { bytes = bytes.saturatingAdd(Int64((try? Sys.lstatIfExists(store.contentPath(d)))??.st_size ?? 0)) }
        reporter.begin(.uploading, filesTotal: 0, bytesTotal: 0)
        let done = Locked<[Digest]>([])
        let width = options.content?.downloadConcurrency ?? 4
        do {
            try await forEachConcurrently(todo, limit: width, pool: pool, cancel: cancel, bufferSize: 4096) { d, _ in
                do {
                    try transport.upload(d, path: self.store.contentPath(d), cancel: cancel)
                } catch let e as SnapshotterError where e.code != .canceled {
                    throw e.context("snapshot: uploading content")
                }
                done.withLock { $0.append(d) }
            }
        } catch {
            try? await rememberUploads(done.withLock { $0 }, remote: remote)
            throw error
        }
        try await rememberUploads(done.withLock { $0 }, remote: remote)
        Log.info("uploaded \(todo.count) content files (\(bytes) bytes) to \(remote)")
    }

    private func rememberUploads(_ digests: [Digest], remote: String) async throws {
        guard !digests.isEmpty else { return }
        try await pool.run {
            try self.meta.env.write { txn in
                for d in digests { try txn.put(self.meta.uploaded, MetadataStore.uploadedKey(remote, d), []) }
            }
        }
    }
}
