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
        for d in todo { bytes += Int64((try? Sys.lstatIfExists(store.contentPath(d)))??.st_size ?? 0) }
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

    /// Downloads missing content with bounded parallelism; every byte is
    /// verified against its digest before the file gets its final name.
    func download(_ files: [SnapshotFile], from transport: any ContentTransport, key: SnapshotKey,
                  reporter: ProgressReporter, cancel: CancellationFlag) async throws {
        reporter.begin(.fetching, filesTotal: Int64(files.count), bytesTotal: files.reduce(0) { $0 + $1.size })
        let width = max(1, options.content?.downloadConcurrency ?? 4)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func add() {
                let f = files[next]
                next += 1
                group.addTask {
                    try await self.downloads.run(f.digest) {
                        try await self.pool.run { try self.fetchOne(f, from: transport, key: key, reporter: reporter, cancel: cancel) }
                    }
                    reporter.fileDone()
                }
            }
            while next < min(width, files.count) { add() }
            while try await group.next() != nil {
                try cancel.check()
                if next < files.count { add() }
            }
        }
        try await pool.run { try self.store.syncDirectories() }
    }

    private func fetchOne(_ f: SnapshotFile, from transport: any ContentTransport, key: SnapshotKey,
                          reporter: ProgressReporter, cancel: CancellationFlag) throws {
        let final = store.contentPath(f.digest)
        if try Sys.lstatIfExists(final) != nil { return }
        let tmp = ContentStore.tempPath(in: store.contentDir)
        let fd = try Sys.open(tmp, O_RDWR | O_CREAT | O_EXCL, 0o444)
        var keep = false
        defer {
            Sys.close(fd)
            if !keep { try? Sys.unlinkIfExists(tmp) }
        }
        do {
            try transport.download(f.digest, into: fd, tempPath: tmp, cancel: cancel) { reporter.addBytes($0) }
        } catch let e as SnapshotterError where e.code != .canceled {
            throw e.context("restore \(key): \(f.relativePath)")
        }
        try cancel.check()
        let st = try Sys.fstat(fd, tmp)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SPF1.chunkSize, alignment: 4096)
        defer { buffer.deallocate() }
        let verify = try Sys.open(tmp, O_RDONLY)
        defer { Sys.close(verify) }
        let r: SPF1.DecodeResult
        do {
            r = try SPF1.decode(from: verify, streamLength: Int64(st.st_size), to: nil, name: tmp, buffer: buffer) { _ in }
        } catch let e as SnapshotterError where e.code == .corrupt {
            throw SnapshotterError.corrupt("restore \(key): content \(f.digest) from \(transport.remoteID) is corrupt: \(e.message)")
        }
        guard r.digest == f.digest else {
            throw SnapshotterError.corrupt("restore \(key): content \(f.digest) from \(transport.remoteID) is corrupt (it hashes to \(r.digest))")
        }
        try Sys.fsync(fd, tmp)
        keep = try Sys.renameNoReplace(tmp, final)
    }
}
