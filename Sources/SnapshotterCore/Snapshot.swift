#if canImport(Glibc)
import Glibc
#endif
import CShim
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

/// Snapshot: store the listed files, make them durable, upload and
/// publish, then commit the record.
extension Snapshotter {
    /// Snapshots `files` under `baseDir` as `name:version`. Each listed path
    /// is opened below `baseDir` without following any symlink (`baseDir`'s
    /// own path may have them) and must be a regular file, else
    /// `.invalidArgument`; a file that keeps changing while it is read
    /// fails with `.busy`. The list is taken out of the request and let go
    /// once the files are prepared: a caller that hands its list over
    /// (snapshotctl) does not keep it through the commit.
    public func snapshot(_ request: consuming SnapshotRequest, progress: ProgressHandler? = nil,
                         cancel: CancellationFlag? = nil, remote call: CallRemote? = nil) async throws -> SnapshotReport {
        try Naming.validateName(request.name)
        try Naming.validateVersion(request.version)
        guard !request.baseDir.isEmpty else { throw SnapshotterError.invalid("base directory is empty") }
        let key = SnapshotKey(name: request.name, version: request.version)
        var listed = try Self.normalizedFiles(request.files, key)
        request.files = []
        let count = listed.count
        let baseDir = request.baseDir, reportFiles = request.reportFiles
        // Settings are taken when the call starts: a later setRegistry
        // changes later calls only.
        let remote = self.remote(call)
        return try await operation(cancel) { flag in
            let reporter = ProgressReporter(handler: progress, cancel: flag, minIntervalNanos: options.progressIntervalNanos)
            reporter.setPhase(.preparing)
            try flag.check()
            let base = try await pool.run { try self.openBaseDirectory(baseDir, key) }
            defer { Sys.close(base) }
            // The prepared files go once stored: they are not kept through
            // the commit (a repair stores a file again from its path).
            // A local snapshot commits beside the barrier's renames.
            let local = remote.transport == nil && remote.registry == nil
            if commitsInGroups(count: count, local: local) {
                var committed = try await snapshotInGroups(key, files: Self.take(&listed), base: base, reporter: reporter, cancel: flag)
                if reportFiles {
                    committed.info.files = try await pool.run { try self.meta.read { try $0.snapshot(key, config: false)?.files ?? [] } }
                }
                reporter.finish()
                return Self.report(committed)
            }
            let (stored, batch) = try await storeAll(key, try await prepareSnapshot(key, base: base, files: Self.take(&listed), cancel: flag),
                                                     base: base, placeBeside: local, reporter: reporter, cancel: flag)
            defer { batch?.discard() }
            if let transport = remote.transport {
                // Content goes up before the config names it anywhere.
                try await self.upload(Array(Set(stored.files.map(\.digest))), to: transport, reporter: reporter, cancel: flag)
            }
            if let registry = remote.registry {
                // Published before it is recorded: a failed publish records
                // nothing, and the stored content makes a retry cheap.
                reporter.setPhase(.publishing)
                try flag.check()
                let config = SnapshotConfig.encode(stored.files)
                try await pool.run { try registry.publish(name: key.name, version: key.version, config: config, cancel: flag) }
                reporter.setPhase(.committing)
                try flag.check()
            }
            // Handed over, not shared: the commit drops what its tables
            // alone need before it writes the record.
            let handoff = Locked(consume stored)
            // The barrier's job is queued first: the commit's job, which
            // waits for it, never holds the thread it needs (jobs start in
            // the order they were submitted).
            let placement = batch.map { batch in
                let placement = Placement()
                pool.submit {
                    placement.end(Result {
                        let lost = try batch.barrier(placement: placement)
                        try self.store.syncDirectories()
                        return lost
                    })
                }
                return placement
            }
            let committed = try await pool.run {
                // Whatever ends the commit, the renames are over when it returns.
                defer { _ = try? placement?.finish() }
                if placement == nil { SnapshotHooks.reach(.stored, root: self.root) }
                Self.trimHeap(files: count)
                return try self.commitSnapshot(key, stored: handoff.take(leaving: .empty), config: nil, placement: placement,
                                               keepFiles: reportFiles, cancel: flag) { missing, current in
                    try self.storeAgain(missing, of: current, base: base, cancel: flag)
                }
            }
            reporter.finish()
            return Self.report(committed)
        }
    }

    /// The report of a committed snapshot.
    private static func report(_ c: Committed) -> SnapshotReport {
        SnapshotReport(info: c.info, fileCount: c.fileCount, totalSize: c.totalSize, filesStored: c.filesStored,
                       filesKnownByInode: c.filesKnownByInode, bytesRead: c.bytesRead)
    }

    /// What the store phase freed (the prepared list, the batch's lists, the
    /// workers' garbage) stays resident in malloc's arenas, the workers'
    /// above all; given back before the commit, whose record and dirty
    /// pages make the snapshot's peak. malloc_trim is process-wide: it
    /// walks every arena of the host process, locks each in turn and
    /// returns what is free there too (under 1 ms here at 100,000 files).
    /// Worth that only when the snapshot freed megabytes itself: at
    /// `trimFromFiles` files or more, at the commit's boundaries only.
    static func trimHeap(files: Int) {
        if files >= trimFromFiles { cshim_trim_heap() }
    }

    /// ~400 bytes a file are freed before the commit: 4 MB at this count.
    static let trimFromFiles = 10_000

    /// The list, leaving an empty one: the argument it becomes is the only
    /// reference left here.
    static func take(_ list: inout [FileRequest]) -> [FileRequest] {
        defer { list = [] }
        return list
    }

    /// The listed paths normalized and sorted (the record's order, and a
    /// directory's files together); a path listed twice is refused.
    static func normalizedFiles(_ files: [FileRequest], _ key: SnapshotKey) throws -> [FileRequest] {
        // A list already normal, sorted and without twins is used as it is
        // (no copy of a long list).
        if files.indices.allSatisfy({ i in
            PathGuard.isNormal(files[i].relativePath)
                && (i == 0 || PathGuard.precedes(files[i - 1].relativePath, files[i].relativePath))
        }) {
            return files
        }
        var normalized: [FileRequest] = []
        normalized.reserveCapacity(files.count)
        for f in files {
            normalized.append(FileRequest(try PathGuard.normalize(f.relativePath), readOnly: f.readOnly))
        }
        normalized.sort { PathGuard.precedes($0.relativePath, $1.relativePath) }
        // Twins by their bytes: String's == would also take "é" and "e" +
        // U+0301, two names on disk, for one.
        for i in normalized.indices.dropFirst() where PathGuard.same(normalized[i - 1].relativePath, normalized[i].relativePath) {
            throw SnapshotterError.invalid("file \(normalized[i].relativePath.debugDescription) is listed twice in snapshot \(key)")
        }
        return normalized
    }

    /// Stores every prepared file concurrently, then makes what was created
    /// durable in one barrier. With `placeBeside`, a batch too large to
    /// fsync file by file is returned before its barrier instead, for the
    /// commit to run beside it.
    func storeAll(_ key: SnapshotKey, _ prepared: [PreparedFile], base: Int32, placeBeside: Bool,
                          reporter: ProgressReporter, cancel flag: CancellationFlag) async throws -> (StoredFiles, DurableBatch?) {
        reporter.begin(.storing, filesTotal: Int64(prepared.count), bytesTotal: try prepared.checkedTotal("size") { $0.size })
        let results = Locked((StoredFiles(unset: prepared.count), 0))
        // Opened before any write: its barrier sees every writeback error since.
        let batch = try await pool.run { try DurableBatch(store: self.store) }
        var handedOver = false
        defer { if !handedOver { batch.discard() } }
        try await forEachConcurrently(Array(prepared.indices), limit: options.snapshotConcurrency, pool: pool, cancel: flag) { i, buffer in
            let stored = try self.storeFile(prepared[i], base: base, useInodeIndex: true, buffer: buffer, batch: batch,
                                            reporter: reporter, cancel: flag)
            results.withLock { $0.0[i] = stored; $0.1 += 1 }
            reporter.fileDone()
        }
        try flag.check()
        reporter.setPhase(.committing)
        try flag.check()
        // Taken out, not copied: at many files this is the largest array.
        var (stored, done) = results.take(leaving: (.empty, 0))
        guard done == prepared.count else { throw SnapshotterError(.internal, "snapshot \(key): a file was not stored") }
        // New content or links must be durable before a record names
        // them; a snapshot of only known files created nothing.
        guard stored.facts.contains(where: { !$0.knownByInode }) else { return (stored, nil) }
        if placeBeside, batch.count > DurableBatch.fsyncEachUpTo {
            handedOver = true
            return (stored, batch)
        }
        let lost = try await pool.run {
            let lost = try batch.barrier()
            try self.store.syncDirectories()
            return lost
        }
        stored.notCreated(placedFirstByOthers: lost)
        return (stored, nil)
    }

    /// Stores again the files whose content another process deleted before
    /// the commit (each made durable at once: there is no batch here).
    func storeAgain(_ missing: [Int], of current: StoredFiles, base: Int32,
                            cancel flag: CancellationFlag) throws -> StoredFiles {
        var repaired = current
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SPF1.chunkSize, alignment: 4096)
        defer { buffer.deallocate() }
        for i in missing {
            // Read again from its path, without the inode index: nothing of
            // the prepare is needed.
            let f = current.files[i]
            let again = PreparedFile(relativePath: f.relativePath, readOnly: f.readOnly, size: f.size, stat: ListedStat(FileStat()),
                                     known: nil, knownEncodedSize: nil)
            repaired[i] = try storeFile(again, base: base, useInodeIndex: false, buffer: buffer, batch: nil,
                                        reporter: nil, cancel: flag)
        }
        return repaired
    }
}
