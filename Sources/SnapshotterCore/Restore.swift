#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

/// Restore from the local store into an output directory.
extension Snapshotter {
    /// Restores `name:version` into `outputDir`.
    public func restore(_ request: RestoreRequest, progress: ProgressHandler? = nil,
                        cancel: CancellationFlag? = nil, remote call: CallRemote? = nil) async throws -> RestoreReport {
        try Naming.validateName(request.name)
        try Naming.validateVersion(request.version)
        guard !request.outputDir.isEmpty else { throw SnapshotterError.invalid("output directory is empty") }
        let key = SnapshotKey(name: request.name, version: request.version)
        let remote = self.remote(call)
        let registry = remote.registry
        let transport = remote.transport
        return try await operation(cancel) { flag in
            let reporter = ProgressReporter(handler: progress, cancel: flag, minIntervalNanos: options.progressIntervalNanos)
            reporter.setPhase(.preparing)
            try flag.check()
            // The lease is taken in a write transaction that checks the
            // snapshot is there: the collector and delete then leave it, and
            // so its content (its references name every digest), until the
            // export ends. A snapshot only the registry has is fetched and
            // recorded first.
            let found = Locked(false)
            let leaseCheck: @Sendable (MetadataTransaction) throws -> [Digest] = { txn in
                guard try txn.snapshotExists(key) else {
                    throw SnapshotterError(.notFound, "snapshot \(key) not found")
                }
                found.withLock { $0 = true }
                return []
            }
            // Last access is recorded in the transaction that drops the lease.
            let touch: @Sendable (MetadataTransaction) throws -> Void = { txn in
                try txn.setLastAccess(key, Sys.nowNanos())
            }
            let exportBody: @Sendable () async throws -> RestoreReport = {
                // Read where they are in the map, under the lease, not decoded
                // into a list (HeldSnapshotFiles).
                guard let files = try await self.pool.run({ try self.meta.heldSnapshotFiles(key) }) else {
                    throw SnapshotterError(.internal, "restore \(key): the leased snapshot has no record")
                }
                defer { files.end() }
                return try await self.export(key, files: files.list, totalSize: files.totalSize, request: request,
                                             reporter: reporter, cancel: flag)
            }
            do {
                return try await withLease(snapshots: [key], digests: [], check: leaseCheck, onSuccess: touch, exportBody)
            } catch let e as SnapshotterError where e.code == .notFound && !found.withLock({ $0 }) {
                guard let registry else { throw e }
                return try await self.restoreFromRemote(key, request: request, registry: registry, transport: transport,
                                                        reporter: reporter, cancel: flag)
            }
        }
    }

    /// Writes every file of a leased snapshot into the output directory.
    func export(_ key: SnapshotKey, files: FileList, totalSize: Int64, request: RestoreRequest,
                reporter: ProgressReporter, cancel flag: CancellationFlag) async throws -> RestoreReport {
        // The record was read: its pages in the map need not stay resident.
        meta.releaseMapPages()
        let (output, targets) = try await openOutput(key, files: files, request: request, requireContent: true, cancel: flag)
        reporter.begin(.exporting, filesTotal: Int64(files.count), bytesTotal: totalSize)
        let counts = Locked(RestoreReport(filesLinked: 0, filesCopied: 0, filesDecoded: 0, bytesWritten: 0))
        do {
            // Spread: the workers link into different directories at once
            // (a directory takes one new name at a time).
            try await forEachIndexConcurrently(files.count, limit: options.restoreConcurrency, pool: pool, cancel: flag,
                                               spread: true) { i, buffer in
                let f = files[i]
                let how = try self.exportFile(f, to: targets.target(i, f), in: output, overwrite: request.overwrite, key: key,
                                              buffer: buffer, reporter: reporter, cancel: flag)
                counts.withLock { $0.count(how, size: f.size) }
                reporter.fileDone(copied: how == .copied)
            }
            try flag.check()
            if output.durable { try await pool.run { try output.syncChanged() } }
        } catch {
            // Take back what this restore made, so it can simply run again.
            _ = try? await pool.run { output.rollBack { targets.target(Int($0), files[Int($0)]) } }
            throw error
        }
        reporter.finish()
        return counts.withLock { $0 }
    }

    /// Opens the output directory, checks every target before anything is
    /// written, then creates the directories; what that made is taken back
    /// if it fails.
    func openOutput(_ key: SnapshotKey, files: FileList, request: RestoreRequest, requireContent: Bool,
                    cancel: CancellationFlag) async throws -> (OutputDirectory, RestoreTargets) {
        let output = try await pool.run { try OutputDirectory(opening: request.outputDir, durable: self.options.durableRestore) }
        do {
            let targets = try await pool.run {
                try RestoreTargets(key, files: files, output: output, overwrite: request.overwrite)
            }
            if requireContent { try await checkContent(key, files: files, targets: targets, cancel: cancel) }
            try await pool.run { try targets.makeDirectories(in: output) }
            return (output, targets)
        } catch {
            // Only directories were made so far.
            _ = try? await pool.run { output.rollBack { _ in nil } }
            throw error
        }
    }

    func loadSnapshot(_ key: SnapshotKey) throws -> SnapshotRecord {
        guard let record = try meta.read({ try $0.snapshot(key) }) else {
            throw SnapshotterError(.notFound, "snapshot \(key) not found")
        }
        return record
    }

    /// Checks that (unless it is still to be fetched) all content is
    /// present: each read-only file's store link is checked here once,
    /// under the lease, and the export trusts the result.
    func checkContent(_ key: SnapshotKey, files: FileList, targets: RestoreTargets,
                      cancel: CancellationFlag) async throws {
        try await forEachIndexConcurrently(files.count, limit: options.restoreConcurrency, pool: pool, cancel: cancel,
                                           bufferSize: 64, spread: true) { i, _ in
            let f = files[i]
            let present: Bool
            do {
                let usable = try self.storeLinkUsable(for: f)
                targets.setStoreLink(i, usable ? .usable : .unusable)
                // What is not linked is decoded from the content.
                present = try usable || self.store.contentStat(f.digest) != nil
            } catch let e as SnapshotterError {
                throw e.context("restore \(key): \(f.relativePath)")
            }
            guard present else {
                throw SnapshotterError(.corrupt, "restore \(key): content \(f.digest) of \(f.relativePath) is missing from the store")
            }
        }
    }

    /// Whether `f` may be restored as a hard link to the store's read-only
    /// link: one is there, a regular file whose inode already carries this
    /// file's metadata (so restoring never changes the mode or times of
    /// any other file sharing it: the store's, or the original source's).
    func storeLinkUsable(for f: SnapshotFile) throws -> Bool {
        guard f.readOnly, let link = try store.linkStat(f.digest) else { return false }
        return (link.st_mode & S_IFMT) == S_IFREG && metadataMatches(link, f)
    }

    enum ExportMethod: Sendable { case linked, copied, decoded }

    /// Writes one file under a temporary name next to its target, applies
    /// its metadata, then renames it into place; a read-only file whose
    /// store link is usable is hard-linked instead.
    func exportFile(_ f: SnapshotFile, to t: OutputDirectory.Target, in output: OutputDirectory, overwrite: Bool,
                    key: SnapshotKey, buffer: UnsafeMutableRawBufferPointer, reporter: ProgressReporter,
                    cancel: CancellationFlag) throws -> ExportMethod {
        var linkable: Bool
        switch t.storeLink {
        case .usable: linkable = true
        case .unusable: linkable = false
        case .unchecked: linkable = try storeLinkUsable(for: f)
        }
        var fallback = ExportMethod.decoded
        // A hard link is never half-written: without overwrite it goes
        // straight to its final name (one directory operation, like cp -al).
        if linkable && !overwrite {
            do {
                if try output.link(store.linkDirFD, f.digest.hex, from: store.linkPath(f.digest), at: t) {
                    reporter.addBytes(f.size)
                    return .linked
                }
                throw SnapshotterError(.alreadyExists, "restore \(key): \(output.display(t)) appeared while restoring")
            } catch let e as SnapshotterError where Self.linkFallsBack(e) {
                linkable = false
                fallback = e.code == .crossDevice ? .copied : .decoded
            }
        }
        return try placeExport(to: t, in: output, overwrite: overwrite, key: key, cancel: cancel) { tmp in
            var method = fallback
            if linkable {
                do {
                    if try output.link(store.linkDirFD, f.digest.hex, from: store.linkPath(f.digest), at: tmp) {
                        method = .linked
                    }
                } catch let e as SnapshotterError where Self.linkFallsBack(e) {
                    method = e.code == .crossDevice ? .copied : .decoded
                }
            }
            if method == .linked {
                reporter.addBytes(f.size)
            } else {
                let fd = try output.create(tmp)
                defer { Sys.close(fd) }
                let what = output.display(tmp.dir, tmp.name)
                try decodeContent(f, into: fd, what: what, key: key, buffer: buffer, reporter: reporter, cancel: cancel)
                if output.durable { try Sys.fsync(fd, what) }
            }
            return method
        }
    }

    /// A link that fails for these reasons (another file system, the link
    /// gone, links refused) is replaced by a copy of the content.
    static func linkFallsBack(_ e: SnapshotterError) -> Bool {
        e.code == .crossDevice || e.code == .notFound || e.code == .permission
    }

    /// Has `write` produce a file at a temporary name next to the target,
    /// then renames it into place (replacing what is there only when
    /// overwriting); the temporary file is removed on any failure.
    func placeExport(to t: OutputDirectory.Target, in output: OutputDirectory, overwrite: Bool, key: SnapshotKey,
                     cancel: CancellationFlag, _ write: (_ tmp: OutputDirectory.Temp) throws -> ExportMethod) throws -> ExportMethod {
        let tmp = output.tempName(for: t)
        var placed = false
        defer { if !placed { output.remove(tmp) } }
        let method = try write(tmp)
        try cancel.check()
        try place(tmp, at: t, in: output, overwrite: overwrite, linked: method == .linked, key: key)
        placed = true
        return method
    }

    /// Renames a finished temporary file to its target, replacing what is
    /// there only when overwriting.
    func place(_ tmp: OutputDirectory.Temp, at t: OutputDirectory.Target, in output: OutputDirectory, overwrite: Bool,
               linked: Bool, key: SnapshotKey) throws {
        guard try output.place(tmp, at: t, overwrite: overwrite, linked: linked) else {
            throw SnapshotterError(.alreadyExists, "restore \(key): \(output.display(t)) appeared while restoring")
        }
    }

    func metadataMatches(_ st: FileStat, _ f: SnapshotFile) -> Bool {
        UInt32(st.st_mode) & 0o7777 == f.mode && Sys.mtimeNanos(st) == f.mtimeNanos
            && (!Sys.isRoot || (st.st_uid == f.uid && st.st_gid == f.gid))
    }

    /// Decodes a content file into the new file `outFD` (`what` names it),
    /// verifying its digest in the same pass, and gives it the file's
    /// metadata; holes stay holes.
    func decodeContent(_ f: SnapshotFile, into outFD: Int32, what: String, key: SnapshotKey,
                       buffer: UnsafeMutableRawBufferPointer, reporter: ProgressReporter?,
                       cancel: CancellationFlag) throws {
        let src = store.contentPath(f.digest)
        let inFD = try Sys.open(src, O_RDONLY)
        defer { Sys.close(inFD) }
        let st = try Sys.fstat(inFD, src)
        let r: SPF1.DecodeResult
        var dataBytes: Int64 = 0
        defer { reporter?.addBytes(max(0, f.size - dataBytes)) }
        do {
            r = try SPF1.decode(from: inFD, streamLength: Int64(st.st_size), to: outFD, name: src, output: what, buffer: buffer) { n in
                dataBytes += n
                reporter?.addBytes(n)
                try cancel.check()
            }
        } catch let e as SnapshotterError where e.code == .corrupt {
            throw e.context("restore \(key): \(f.relativePath)")
        }
        guard r.digest == f.digest else {
            throw SnapshotterError.corrupt("restore \(key): content of \(f.relativePath) is corrupt (expected \(f.digest), got \(r.digest))")
        }
        guard r.logicalSize == f.size else {
            throw SnapshotterError.corrupt("restore \(key): content of \(f.relativePath) has size \(r.logicalSize), expected \(f.size)")
        }
        try ContentStore.applyMetadata(of: f, to: outFD, path: what)
    }
}

extension RestoreReport {
    /// Counts one exported file of `size` bytes (a link writes none).
    mutating func count(_ how: Snapshotter.ExportMethod, size: Int64) {
        switch how {
        case .linked: filesLinked += 1
        case .copied: filesCopied += 1; bytesWritten = bytesWritten.saturatingAdd(size)
        case .decoded: filesDecoded += 1; bytesWritten = bytesWritten.saturatingAdd(size)
        }
    }
}
