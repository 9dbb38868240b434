#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// An open snapshot store: the engine's facade. Many tasks may use one store
/// at once, and several processes may open the same root; blocking work runs
/// on the blocking pool, never on Swift's cooperative threads.
public final class Snapshotter: Sendable {
    public let root: String
    public let options: StoreOptions
    let store: ContentStore
    let meta: MetadataStore
    let pool: BlockingPool

    private struct Operations {
        var closed = false
        var next: UInt64 = 0
        var active: [UInt64: CancellationFlag] = [:]
    }
    private let operations = Locked(Operations())
    private let collector = Locked<Task<Void, Never>?>(nil)
    private let registrySlot: Locked<(any MetadataRegistry)?>

    /// The registry snapshots are published to and fetched from, if any.
    var registry: (any MetadataRegistry)? { registrySlot.withLock { $0 } }

    /// Changes the registry for the calls that start after this one (the
    /// Go API's per-call options do this).
    public func setRegistry(_ settings: RegistrySettings?) throws {
        let r = try settings.map { try makeRegistry($0, maxConfigBytes: options.maxConfigBytes) }
        registrySlot.withLock { $0 = r }
    }

    private let transportSlot: Locked<(any ContentTransport)?>
    let downloads = SingleFlight()

    /// The content transport, if any.
    var transport: (any ContentTransport)? { transportSlot.withLock { $0 } }

    /// Changes the content transport for the calls that start after this one.
    public func setContent(_ settings: ContentSettings?) throws {
        let t = try settings.map(makeTransport)
        transportSlot.withLock { $0 = t }
    }

    /// Opens (creating if needed) the store under `root`.
    public init(root: String, options: StoreOptions = StoreOptions()) throws {
        guard !root.isEmpty else { throw SnapshotterError.invalid("root directory is empty") }
        guard options.snapshotConcurrency > 0, options.restoreConcurrency > 0 else {
            throw SnapshotterError.invalid("concurrency must be at least 1")
        }
        let permissions = StorePermissions(group: options.storeGroup.map { gid_t($0) })
        // A root we create gets the store's mode; an existing one (given by
        // the user) is left as it is: the layout inside is ours.
        let created = try Sys.lstatIfExists(root) == nil
        try Sys.mkdirs(root, mode: permissions.directoryMode)
        if created { try permissions.ownDirectory(root) }
        self.root = try Sys.realpath(root)
        self.options = options
        self.registrySlot = Locked(try options.registry.map { try makeRegistry($0, maxConfigBytes: options.maxConfigBytes) })
        self.transportSlot = Locked(try options.content.map(makeTransport))
        self.pool = BlockingPool.shared
        self.store = try ContentStore(root: self.root, permissions: permissions)
        self.meta = try MetadataStore(directory: self.root + "/metadata", mapSize: options.metadataMapSize, permissions: permissions)
        try emptyTrash()
        startCollector()
    }

    /// The background collector: every interval, one collection with the
    /// store's policy. It holds the store weakly and stops at close.
    private func startCollector() {
        let interval = options.gc.intervalSeconds
        guard interval > 0 else { return }
        let task = Task.detached(priority: .background) { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: UInt64(Int64.nanos(seconds: interval)))
                guard !Task.isCancelled, let store = self else { return }
                do {
                    _ = try await store.gc()
                } catch let e as SnapshotterError where e.code == .closed || e.code == .canceled {
                    return
                } catch {
                    Log.error("gc \(store.root): \(error.asSnapshotterError.message)")
                }
            }
        }
        collector.withLock { $0 = task }
    }

    /// Opens a store without blocking the caller's cooperative thread.
    public static func open(root: String, options: StoreOptions = StoreOptions()) async throws -> Snapshotter {
        try await BlockingPool.shared.run { try Snapshotter(root: root, options: options) }
    }

    /// Refuses new operations, cancels those in flight and waits for them.
    public func close() async {
        collector.withLock { $0?.cancel(); $0 = nil }
        let flags = operations.withLock { ops -> [CancellationFlag] in
            ops.closed = true
            return Array(ops.active.values)
        }
        flags.forEach { $0.cancel() }
        while operations.withLock({ !$0.active.isEmpty }) {
            try? await Task.sleep(nanoseconds: 1_000_000)
        }
    }

    /// Operations currently running on this store.
    public var activeOperations: Int { operations.withLock { $0.active.count } }

    /// Runs `body` as a tracked operation: refused after close, canceled by
    /// task cancellation, by `cancel`, or by close.
    func operation<T: Sendable>(_ cancel: CancellationFlag?, _ body: (CancellationFlag) async throws -> T) async throws -> T {
        let flag = cancel ?? CancellationFlag()
        let id = try operations.withLock { ops -> UInt64 in
            if ops.closed { throw SnapshotterError(.closed, "the store at \(root) is closed") }
            ops.next += 1
            ops.active[ops.next] = flag
            return ops.next
        }
        defer { _ = operations.withLock { $0.active.removeValue(forKey: id) } }
        do {
            return try await withTaskCancellationHandler {
                try flag.check()
                return try await body(flag)
            } onCancel: {
                flag.cancel()
            }
        } catch {
            if flag.isCanceled { throw SnapshotterError.canceled }
            throw error.asSnapshotterError
        }
    }

    // MARK: snapshot

    /// Snapshots `files` under `baseDir` as `name:version`. Each listed path
    /// is opened below `baseDir` without following any symlink (`baseDir`'s
    /// own path may have them) and must be a regular file, else
    /// `.invalidArgument`; a file that keeps changing while it is read
    /// fails with `.busy`.
    public func snapshot(_ request: SnapshotRequest, progress: ProgressHandler? = nil,
                         cancel: CancellationFlag? = nil, remote call: CallRemote? = nil) async throws -> SnapshotReport {
        try Naming.validateName(request.name)
        try Naming.validateVersion(request.version)
        guard !request.baseDir.isEmpty else { throw SnapshotterError.invalid("base directory is empty") }
        let key = SnapshotKey(name: request.name, version: request.version)
        var seen = Set<String>()
        var normalized: [FileRequest] = []
        for f in request.files {
            let p = try PathGuard.normalize(f.relativePath)
            guard seen.insert(p).inserted else {
                throw SnapshotterError.invalid("file \(p.debugDescription) is listed twice in snapshot \(key)")
            }
            normalized.append(FileRequest(p, readOnly: f.readOnly))
        }
        let files = normalized
        // Settings are taken when the call starts: a later setRegistry
        // changes later calls only.
        let remote = self.remote(call)
        let registry = remote.registry
        let transport = remote.transport
        return try await operation(cancel) { flag in
            let reporter = ProgressReporter(handler: progress, cancel: flag, minIntervalNanos: options.progressIntervalNanos)
            reporter.setPhase(.preparing)
            try flag.check()
            let base = try await pool.run { try self.openBaseDirectory(request.baseDir, key) }
            defer { Sys.close(base) }
            let prepared = try await pool.run { try self.prepareSnapshot(key, base: base, files: files) }
            reporter.begin(.storing, filesTotal: Int64(prepared.count), bytesTotal: try prepared.checkedTotal("size") { $0.size })
            let results = Locked([StoredFile?](repeating: nil, count: prepared.count))
            // Opened before any write: its barrier sees every writeback error since.
            let batch = try await pool.run { try DurableBatch(store: self.store) }
            defer { batch.discard() }
            try await forEachConcurrently(Array(prepared.indices), limit: options.snapshotConcurrency, pool: pool, cancel: flag) { i, buffer in
                let stored = try self.storeFile(prepared[i], base: base, useInodeIndex: true, buffer: buffer, batch: batch,
                                                reporter: reporter, cancel: flag)
                results.withLock { $0[i] = stored }
                reporter.fileDone()
            }
            try flag.check()
            reporter.setPhase(.committing)
            try flag.check()
            var stored = results.withLock { $0.compactMap { $0 } }
            guard stored.count == prepared.count else { throw SnapshotterError(.internal, "snapshot \(key): a file was not stored") }
            // New content or links must be durable before a record names
            // them; a snapshot of only known files created nothing.
            if stored.contains(where: { !$0.knownByInode }) {
                let lost = try await pool.run {
                    let lost = try batch.barrier()
                    try self.store.syncDirectories()
                    return lost
                }
                // Another snapshot placed that content first: not ours.
                if !lost.isEmpty {
                    for i in stored.indices where stored[i].created && lost.contains(stored[i].file.digest) { stored[i].created = false }
                }
            }
            if let transport {
                // Content goes up before the config names it anywhere.
                try await self.upload(Array(Set(stored.map(\.file.digest))), to: transport, reporter: reporter, cancel: flag)
            }
            if let registry {
                // Published before it is recorded: a failed publish records
                // nothing, and the stored content makes a retry cheap.
                reporter.setPhase(.publishing)
                try flag.check()
                let config = SnapshotConfig.encode(stored.map(\.file))
                try await pool.run { try registry.publish(name: key.name, version: key.version, config: config, cancel: flag) }
                reporter.setPhase(.committing)
                try flag.check()
            }
            let info = try await pool.run { [stored] in
                try self.commitSnapshot(key, stored: stored, config: nil, cancel: flag) { missing, current in
                    var repaired = current
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SPF1.chunkSize, alignment: 4096)
                    defer { buffer.deallocate() }
                    for i in missing {
                        repaired[i] = try self.storeFile(prepared[i], base: base, useInodeIndex: false, buffer: buffer, batch: nil,
                                                         reporter: nil, cancel: flag)
                    }
                    return repaired
                }
            }
            stored = info.1
            reporter.finish()
            return SnapshotReport(info: info.0,
                                  filesStored: stored.filter(\.created).count,
                                  filesKnownByInode: stored.filter(\.knownByInode).count,
                                  bytesRead: stored.saturatingTotal { $0.bytesRead })
        }
    }

    struct MissingContent: Error { var indices: [Int] }

    /// One write transaction records the snapshot, its content and its
    /// references. Content another process deleted meanwhile is stored
    /// again from the source, then the commit is retried.
    /// One write transaction records the snapshot, its content and its
    /// references. Content another process deleted meanwhile is put back by
    /// `repair` (stored again from the source), then the commit is retried.
    func commitSnapshot(_ key: SnapshotKey, stored initial: [StoredFile], config givenConfig: [UInt8]?,
                        cancel: CancellationFlag,
                        repair: ([Int], [StoredFile]) throws -> [StoredFile]) throws -> (SnapshotInfo, [StoredFile]) {
        var stored = initial
        let files = stored.map(\.file)
        let config = givenConfig ?? SnapshotConfig.encode(files)
        let sortedFiles = files.sorted { $0.relativePath.utf8.lexicographicallyPrecedes($1.relativePath.utf8) }
        let now = Sys.nowNanos()
        // Encoded once: at many files the record is the largest buffer.
        let recordBytes = SnapshotRecord(created: now, files: sortedFiles, config: config).encode()
        try meta.requireRoom("snapshot \(key)", recordBytes: recordBytes.count, digests: Set(files.map(\.digest)).count)
        for attempt in 0..<4 {
            do {
                try meta.write { txn in
                    // Last chance to stop: a throw here aborts the commit.
                    try cancel.check()
                    try self.writeSnapshot(txn, key, record: recordBytes, stored: stored, now: now)
                }
                let info = SnapshotInfo(name: key.name, version: key.version, createdNanos: now, lastAccessedNanos: now,
                                        files: sortedFiles, config: config)
                return (info, stored)
            } catch let missing as MissingContent {
                guard attempt < 3 else { break }
                try cancel.check()
                stored = try repair(missing.indices, stored)
                try store.syncDirectories()
            }
        }
        throw SnapshotterError(.busy, "snapshot \(key): its content kept being deleted by another process")
    }

    private func writeSnapshot(_ txn: MetadataTransaction, _ key: SnapshotKey, record: [UInt8],
                               stored: [StoredFile], now: Int64) throws {
        if try txn.hasSnapshot(key) {
            throw SnapshotterError(.alreadyExists, "snapshot \(key) already exists")
        }
        // Take back content the trash holds, then check every file is still
        // there: deleters only unlink inside a write transaction, so what
        // exists now stays until this one commits.
        var missing: [Int] = []
        var checked: [Digest: Bool] = [:]
        var checkedLinks: [Digest: Bool] = [:]
        // A digest with a content record and no trash entry cannot have lost
        // its file: deleters drop the record and put the trash entry in one
        // transaction before they unlink, and the sweep only unlinks files
        // no record names. Only the others are looked at on disk.
        var records: [Digest: ContentRecord] = [:]
        for (i, s) in stored.enumerated() {
            let d = s.file.digest
            if checked[d] == nil {
                let inTrash = try txn.untrash(d)
                if !inTrash, let rec = try txn.contentRecord(d) {
                    records[d] = rec
                    checked[d] = true
                    if rec.hasLink { checkedLinks[d] = true }
                } else {
                    checked[d] = try store.contentStat(d) != nil
                }
            }
            var ok = checked[d] == true
            if s.file.readOnly {
                if checkedLinks[d] == nil { checkedLinks[d] = try store.linkStat(d) != nil }
                ok = ok && checkedLinks[d] == true
            }
            if !ok { missing.append(i) }
        }
        if !missing.isEmpty { throw MissingContent(indices: missing) }
        var written = Set<Digest>()
        for s in stored {
            let d = s.file.digest
            let existing = try records[d] ?? txn.contentRecord(d)
            let hasLink = (existing?.hasLink ?? false) || checkedLinks[d] == true
            if written.insert(d).inserted || existing?.hasLink != hasLink {
                if existing == nil || existing?.hasLink != hasLink {
                    try txn.putContent(d, ContentRecord(encodedSize: s.encodedSize, logicalSize: s.file.size,
                                                              created: existing?.created ?? now, hasLink: hasLink))
                }
                try txn.addReference(d, from: key)
            }
            if let l = s.linkedInode {
                try txn.putInode(dev: l.dev, ino: l.ino,
                                 InodeRecord(digest: d, size: s.file.size, mtimeNanos: s.file.mtimeNanos, ctimeNanos: l.ctimeNanos))
            }
        }
        try txn.putSnapshot(key, encodedRecord: record, accessed: now)
    }

    // MARK: list, info, delete

    public func list() async throws -> [SnapshotSummary] {
        try await operation(nil) { _ in
            try await pool.run {
                try self.meta.read { txn in
                    var out: [SnapshotSummary] = []
                    try txn.forEachSnapshot { key, decoded in
                        let rec = try decoded.get()
                        let accessed = try txn.lastAccess(key) ?? rec.created
                        out.append(SnapshotSummary(name: key.name, version: key.version, createdNanos: rec.created,
                                                   lastAccessedNanos: accessed, fileCount: rec.files.count,
                                                   totalSize: try rec.files.checkedTotal("size", code: .corrupt) { $0.size }))
                    }
                    return out
                }
            }
        }
    }

    /// A snapshot's record: its files and its config.
    public func info(name: String, version: String) async throws -> SnapshotInfo {
        try Naming.validateName(name)
        try Naming.validateVersion(version)
        let key = SnapshotKey(name: name, version: version)
        return try await operation(nil) { _ in
            try await pool.run {
                try self.meta.read { txn in
                    guard let rec = try txn.snapshot(key) else {
                        throw SnapshotterError(.notFound, "snapshot \(key) not found")
                    }
                    return SnapshotInfo(name: name, version: version, createdNanos: rec.created,
                                        lastAccessedNanos: try txn.lastAccess(key) ?? rec.created,
                                        files: rec.files, config: rec.config)
                }
            }
        }
    }

    /// Deletes a snapshot: drops its references and deletes the content that
    /// nothing references any more.
    @discardableResult
    public func delete(name: String, version: String) async throws -> DeleteReport {
        try Naming.validateName(name)
        try Naming.validateVersion(version)
        let key = SnapshotKey(name: name, version: version)
        return try await operation(nil) { _ in
            try await pool.run {
                guard let r = try self.deleteSnapshot(key, unlessAccessedAfter: nil) else {
                    throw SnapshotterError(.notFound, "snapshot \(key) not found")
                }
                return r
            }
        }
    }

    /// Deletes a snapshot's records and then the content only it used.
    /// With `unlessAccessedAfter`, a snapshot accessed after that time (or
    /// already gone) is left alone and nil is returned.
    func deleteSnapshot(_ key: SnapshotKey, unlessAccessedAfter cutoff: Int64?) throws -> DeleteReport? {
        try deleteSnapshots([key], unlessAccessedAfter: cutoff).first?.1
    }

    /// Deletes several snapshots' records in one write transaction, then
    /// their unreferenced content in another; returns those deleted. With
    /// `unlessAccessedAfter` (the collector), snapshots accessed after it,
    /// leased or already gone are skipped; without it they are errors.
    func deleteSnapshots(_ keys: [SnapshotKey], unlessAccessedAfter cutoff: Int64?) throws -> [(SnapshotKey, DeleteReport)] {
        let dropped = try meta.write { txn -> [(key: SnapshotKey, trashed: [Digest], storeBytes: Int64)] in
            let leased = try txn.leaseView().snapshots
            var out: [(key: SnapshotKey, trashed: [Digest], storeBytes: Int64)] = []
            for key in keys {
                guard let rec = try txn.snapshot(key) else {
                    if cutoff != nil { continue }
                    throw SnapshotterError(.notFound, "snapshot \(key) not found")
                }
                if let cutoff, let accessed = try txn.lastAccess(key), accessed >= cutoff { continue }
                if leased.contains(key) {
                    if cutoff != nil { continue }
                    throw SnapshotterError(.busy, "snapshot \(key) is in use by an operation in flight; try again when it is done")
                }
                let (trashed, bytes) = try txn.dropSnapshot(key, digests: Set(rec.files.map(\.digest)))
                out.append((key, trashed, bytes))
            }
            return out
        }
        let (_, bytes) = try removeTrashed(dropped.flatMap(\.trashed))
        // Bytes freed are measured for the whole batch; each report gets
        // its share by content count.
        let total = max(1, dropped.reduce(0) { $0 + $1.trashed.count })
        return dropped.map { key, digests, released in
            (key, DeleteReport(contentFilesRemoved: digests.count, bytesFreed: bytes.share(digests.count, of: total),
                               storeBytesReleased: released))
        }
    }

    /// Unlinks trashed digests' files unless a snapshot took them back or
    /// an operation leases them; returns how many were removed and the
    /// bytes freed. The unlinks happen inside the write transaction, so no
    /// snapshot can start to depend on a file between check and unlink.
    func removeTrashed(_ digests: [Digest]) throws -> (Int, Int64) {
        if digests.isEmpty { return (0, 0) }
        return try meta.write { txn -> (Int, Int64) in
            let leased = try txn.leaseView().digests
            var removed = 0
            var bytes: Int64 = 0
            for d in digests {
                guard try txn.isTrashed(d) else { continue }
                guard try txn.references(d).isEmpty, try txn.contentRecord(d) == nil else {
                    try txn.untrash(d)
                    continue
                }
                // Leased content stays in the trash; a later collection retries.
                if leased.contains(d) { continue }
                if let st = try Sys.lstatIfExists(store.contentPath(d)) { bytes = bytes.saturatingAdd(Int64(st.st_size)) }
                if let st = try Sys.lstatIfExists(store.linkPath(d)), st.st_nlink <= 1 { bytes = bytes.saturatingAdd(Int64(st.st_size)) }
                try store.removeContent(d)
                try txn.untrash(d)
                removed += 1
            }
            return (removed, bytes)
        }
    }

    /// Finishes deletions a crashed process left in the trash.
    func emptyTrash() throws {
        _ = try removeTrashed(try meta.read { try $0.trashed() })
    }
}
