#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

extension Snapshotter {
    /// Restores a snapshot only the registry has. The config is fetched and
    /// every target checked before anything is written. Then, under a lease
    /// on its digests, each missing digest is downloaded and verified in the
    /// same pass that writes its first read-write output (or its read-only
    /// link), and its files are exported at once, while other downloads go
    /// on; content already in the store is exported meanwhile. The snapshot
    /// is recorded, with its references, once every file is in place.
    func restoreFromRemote(_ key: SnapshotKey, request: RestoreRequest, registry: any MetadataRegistry,
                           transport: (any ContentTransport)?, reporter: ProgressReporter,
                           cancel: CancellationFlag) async throws -> RestoreReport {
        reporter.setPhase(.fetching)
        let config = try await pool.run { try registry.fetch(name: key.name, version: key.version, cancel: cancel) }
        let files: [SnapshotFile]
        do { files = try SnapshotConfig.decode(config) } catch let e as SnapshotterError {
            throw SnapshotterError(.registry, "restore \(key): the registry's config is unusable: \(e.message)")
        }
        let (output, targets) = try await openOutput(key, files: FileList(files), request: request, requireContent: false, cancel: cancel)
        var order: [Digest] = []
        var uses: [Digest: [Int]] = [:]
        for (i, f) in files.enumerated() {
            if uses[f.digest] == nil { order.append(f.digest) }
            uses[f.digest, default: []].append(i)
        }
        let digests = order
        let plan = ExportPlan(key: key, files: files, output: output, targets: targets, uses: uses, overwrite: request.overwrite,
                              reporter: reporter, cancel: cancel)
        do {
            return try await withLease(snapshots: [], digests: digests) {
                // Checked under the lease: content here now stays until the end.
                let missing = try await pool.run {
                    try digests.filter { try Sys.lstatIfExists(self.store.contentPath($0)) == nil }
                }
                if let first = missing.first, transport == nil {
                    let f = files[uses[first]![0]]
                    throw SnapshotterError(.notFound, "restore \(key): content \(first) of \(f.relativePath) (and \(missing.count - 1) more) is not in the local store and no content transport is configured")
                }
                let isMissing = Set(missing)
                let present = digests.filter { !isMissing.contains($0) }
                let downloadBytes = try missing.checkedTotal("size") { files[uses[$0]![0]].size }
                reporter.begin(missing.isEmpty ? .exporting : .fetching, filesTotal: Int64(missing.count + files.count),
                               bytesTotal: downloadBytes.saturatingAdd(try files.checkedTotal("size") { $0.size }))
                try await withThrowingTaskGroup(of: Void.self) { group in
                    if plan.pipelined {
                        group.addTask { try await self.exportAll(present, plan: plan) }
                    }
                    if let transport, !missing.isEmpty {
                        group.addTask {
                            try await self.fetchAndExport(missing, from: transport, plan: plan)
                            reporter.setPhase(.exporting)
                        }
                    }
                    try await group.waitForAll()
                }
                // Overwriting replaces files only once all content is here.
                if !plan.pipelined { try await exportAll(digests, plan: plan) }
                try cancel.check()
                if output.durable { try await pool.run { try output.syncChanged() } }
                _ = try await pool.run { try self.recordFetched(key, files: files, config: config, cancel: cancel) }
                reporter.finish()
                return plan.counts.withLock { $0 }
            }
        } catch {
            // Files are exported as their content arrives; a restore that
            // fails takes back the files it put where nothing was and the
            // directories it made, so it can simply be run again.
            _ = try? await pool.run { output.rollBack { plan.target(Int($0)) } }
            throw error
        }
    }

    /// Downloads the missing digests, at most `downloadConcurrency`
    /// transfers at once (one download per digest in this process), each
    /// followed by the export of its files. A transfer's slot is free once
    /// its bytes are in: the fsync and the exports overlap the next one.
    private func fetchAndExport(_ missing: [Digest], from transport: any ContentTransport, plan: ExportPlan) async throws {
        let width = max(1, options.content?.downloadConcurrency ?? 4)
        let transfers = AsyncSemaphore(width)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func add() {
                let d = missing[next]
                next += 1
                group.addTask {
                    // The download's own export, when this task is the one
                    // that downloads (a concurrent restore's task may be).
                    let exported = Locked<Int?>(nil)
                    try await self.downloads.run(d) {
                        await transfers.acquire()
                        let pending: PendingFetch
                        do {
                            pending = try await self.pool.run { try self.transfer(d, from: transport, plan: plan) }
                        } catch {
                            transfers.release()
                            throw error
                        }
                        transfers.release()
                        let placed = try await self.pool.run { try self.complete(pending, from: transport, plan: plan) }
                        exported.withLock { $0 = placed }
                    }
                    plan.reporter.fileDone()
                    guard plan.pipelined else { return }
                    let skip = exported.withLock { $0 }
                    try await self.pool.run {
                        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SPF1.chunkSize, alignment: 4096)
                        defer { buffer.deallocate() }
                        try self.export(d, plan: plan, skipping: skip, buffer: buffer)
                    }
                }
            }
            while next < min(2 * width, missing.count) { add() }
            while try await group.next() != nil {
                try plan.cancel.check()
                if next < missing.count { add() }
            }
        }
    }

    /// Downloads `d` into a temporary file in the store. The bytes are
    /// checked as they arrive when the transport shows them, and decoded in
    /// the same pass into the read-only link (when a read-only file uses
    /// the digest) or else the first read-write file's output.
    private func transfer(_ d: Digest, from transport: any ContentTransport, plan: ExportPlan) throws -> PendingFetch {
        let uses = plan.uses[d]!
        var sink: PendingFetch.Sink = .none
        if let ro = uses.first(where: { plan.files[$0].readOnly }), try Sys.lstatIfExists(store.linkPath(d)) == nil {
            sink = .link(ro)
        } else if plan.pipelined, let rw = uses.first(where: { !plan.files[$0].readOnly }) {
            sink = .output(rw)
        }
        let pending = try PendingFetch(d, contentDir: store.contentDir, permissions: store.permissions, sink: sink,
                                       linkDir: store.linkDir, plan: plan)
        do {
            let got = try transport.download(d, into: pending.fd, tempPath: pending.tmp, cancel: plan.cancel, tap: pending.tap) {
                plan.reporter.addBytes($0)
            }
            if case .replaced(let fd) = got { try pending.replaceFile(with: fd, permissions: store.permissions) }
            try plan.cancel.check()
        } catch {
            pending.discard()
            if let e = error as? SnapshotterError, e.code != .canceled {
                throw e.context("restore \(plan.key): \(plan.files[uses[0]].relativePath)")
            }
            throw error
        }
        return pending
    }

    /// Verifies a transferred digest (reading the file back when its bytes
    /// were not seen on the way), makes it durable and renames it into
    /// place, then puts its link or output in place. Returns the file
    /// exported on the way, if any. On any failure nothing is left under a
    /// final name.
    private func complete(_ pending: PendingFetch, from transport: any ContentTransport, plan: ExportPlan) throws -> Int? {
        defer { pending.discard() }
        let d = pending.digest
        let key = plan.key
        let st = try Sys.fstat(pending.fd, pending.tmp)
        let r: SPF1.DecodeResult
        do {
            if let streamed = try pending.tap.result(fileSize: Int64(st.st_size)) {
                r = streamed
            } else {
                // The bytes go to disk while they are checked.
                Sys.startWriteback(pending.fd)
                if let out = pending.sinkFD { try Sys.ftruncate(out, 0, pending.sinkTmp) }
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SPF1.chunkSize, alignment: 4096)
                defer { buffer.deallocate() }
                let verify = try Sys.open(pending.tmp, O_RDONLY)
                defer { Sys.close(verify) }
                r = try SPF1.decode(from: verify, streamLength: Int64(st.st_size), to: pending.sinkFD, name: pending.tmp,
                                    buffer: buffer) { _ in try plan.cancel.check() }
            }
        } catch let e as SnapshotterError where e.code == .corrupt {
            throw SnapshotterError.corrupt("restore \(key): content \(d) from \(transport.remoteID) is corrupt: \(e.message)")
        }
        guard r.digest == d else {
            throw SnapshotterError.corrupt("restore \(key): content \(d) from \(transport.remoteID) is corrupt (it hashes to \(r.digest))")
        }
        try plan.cancel.check()
        if try ContentStore.publish(pending.fd, pending.tmp, as: store.contentPath(d)) { pending.tmp = "" }
        switch pending.sink {
        case .none:
            return nil
        case .link(let i):
            try ContentStore.applyMetadata(of: plan.files[i], to: pending.sinkFD!, path: pending.sinkTmp)
            if try ContentStore.publish(pending.sinkFD!, pending.sinkTmp, as: store.linkPath(d)) { pending.sinkTmp = "" }
            return nil
        case .output(let i):
            let f = plan.files[i]
            guard r.logicalSize == f.size else {
                throw SnapshotterError.corrupt("restore \(key): content of \(f.relativePath) has size \(r.logicalSize), expected \(f.size)")
            }
            try ContentStore.applyMetadata(of: f, to: pending.sinkFD!, path: pending.sinkTmp)
            if plan.output.durable { try Sys.fsync(pending.sinkFD!, pending.sinkTmp) }
            try place(pending.outputTemp!, at: plan.target(i), in: plan.output, overwrite: plan.overwrite, linked: false, key: key)
            pending.outputTemp = nil
            plan.exported(i, how: .decoded)
            return i
        }
    }

    /// Exports every file of `d` but `skipping` (exported already),
    /// rebuilding the read-only link first when it is missing.
    private func export(_ d: Digest, plan: ExportPlan, skipping: Int?, buffer: UnsafeMutableRawBufferPointer) throws {
        let uses = plan.uses[d]!
        if let ro = uses.first(where: { plan.files[$0].readOnly }), try Sys.lstatIfExists(store.linkPath(d)) == nil {
            try store.materializeLink(d, like: plan.files[ro], buffer: buffer)
        }
        for i in uses where i != skipping {
            let how = try exportFile(plan.files[i], to: plan.target(i), in: plan.output, overwrite: plan.overwrite, key: plan.key,
                                     buffer: buffer, reporter: plan.reporter, cancel: plan.cancel)
            plan.exported(i, how: how, countBytes: false)
        }
    }

    /// Exports every file of these digests, whose content is in the store.
    private func exportAll(_ digests: [Digest], plan: ExportPlan) async throws {
        try await forEachConcurrently(digests, limit: options.restoreConcurrency, pool: pool, cancel: plan.cancel) { d, buffer in
            try self.export(d, plan: plan, skipping: nil, buffer: buffer)
        }
    }

    /// Records a snapshot whose content is in the store, keeping the config
    /// bytes as they were published.
    private func recordFetched(_ key: SnapshotKey, files: [SnapshotFile], config: [UInt8], cancel: CancellationFlag) throws -> SnapshotRecord {
        func stored(_ files: [SnapshotFile]) throws -> [StoredFile] {
            try files.map { f in
                guard let st = try Sys.lstatIfExists(store.contentPath(f.digest)) else {
                    throw SnapshotterError(.notFound, "restore \(key): content \(f.digest) of \(f.relativePath) vanished from the store")
                }
                return StoredFile(file: f, encodedSize: Int64(st.st_size), created: false, knownByInode: false,
                                  linkedInode: nil, bytesRead: 0)
            }
        }
        try store.syncDirectories()
        do {
            let committed = try commitSnapshot(key, stored: try stored(files), config: config, cancel: cancel) { _, _ in
                throw SnapshotterError(.notFound, "restore \(key): content was deleted while the snapshot was being recorded")
            }
            return SnapshotRecord(created: committed.info.createdNanos, files: committed.info.files, givenConfig: committed.info.givenConfig)
        } catch let e as SnapshotterError where e.code == .alreadyExists {
            // Another restore recorded it first.
            return try loadSnapshot(key)
        }
    }
}
