#if canImport(Glibc)
import Glibc
#endif

extension Snapshotter {
    /// The snapshot's record: local, or pulled from the registry and
    /// recorded (with its references) once its content is in the store.
    func localOrRemoteSnapshot(_ key: SnapshotKey, registry: (any MetadataRegistry)?, transport: (any ContentTransport)?,
                               reporter: ProgressReporter, cancel: CancellationFlag) async throws -> SnapshotRecord {
        do {
            return try await pool.run { try self.loadSnapshot(key) }
        } catch let e as SnapshotterError where e.code == .notFound {
            guard let registry else { throw e }
            reporter.setPhase(.fetching)
            let config = try await pool.run { try registry.fetch(name: key.name, version: key.version, cancel: cancel) }
            // Every path is checked before anything is written.
            let files: [SnapshotFile]
            do { files = try SnapshotConfig.decode(config) } catch let e as SnapshotterError {
                throw SnapshotterError(.registry, "restore \(key): the registry's config is unusable: \(e.message)")
            }
            try await ensureContent(key, files: files, transport: transport, reporter: reporter, cancel: cancel)
            return try await pool.run {
                try self.recordFetched(key, files: files, config: config, cancel: cancel)
            }
        }
    }

    /// Makes sure every file's content (and read-only link) is in the local
    /// store: what is missing is downloaded, verified and put in place.
    func ensureContent(_ key: SnapshotKey, files: [SnapshotFile], transport: (any ContentTransport)?,
                       reporter: ProgressReporter, cancel: CancellationFlag) async throws {
        var missing: [SnapshotFile] = []
        var seen = Set<Digest>()
        for f in files where seen.insert(f.digest).inserted {
            if try Sys.lstatIfExists(store.contentPath(f.digest)) == nil { missing.append(f) }
        }
        if let first = missing.first {
            guard let transport else {
                throw SnapshotterError(.notFound, "restore \(key): content \(first.digest) of \(first.relativePath) (and \(missing.count - 1) more) is not in the local store and no content transport is configured")
            }
            try await download(missing, from: transport, key: key, reporter: reporter, cancel: cancel)
        }
        var firstUse: [Digest: SnapshotFile] = [:]
        for f in files where f.readOnly && firstUse[f.digest] == nil { firstUse[f.digest] = f }
        let links = Array(firstUse.values)
        try await forEachConcurrently(links, limit: options.restoreConcurrency, pool: pool, cancel: cancel) { f, buffer in
            if try Sys.lstatIfExists(self.store.linkPath(f.digest)) == nil {
                try self.store.materializeLink(f.digest, like: f, buffer: buffer)
            }
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
            let (info, _) = try commitSnapshot(key, stored: try stored(files), config: config, cancel: cancel) { _, _ in
                throw SnapshotterError(.notFound, "restore \(key): content was deleted while the snapshot was being recorded")
            }
            return SnapshotRecord(created: info.createdNanos, files: info.files, config: config)
        } catch let e as SnapshotterError where e.code == .alreadyExists {
            // Another restore recorded it first.
            return try loadSnapshot(key)
        }
    }
}

extension Snapshotter {
    /// A published snapshot's files and config, straight from the registry
    /// (nothing is recorded or fetched besides the metadata).
    public func inspectRemote(name: String, version: String) async throws -> SnapshotInfo {
        try Naming.validateName(name)
        try Naming.validateVersion(version)
        guard let registry = self.registry else {
            throw SnapshotterError.invalid("inspect \(name):\(version): no registry is configured")
        }
        return try await operation(nil) { _ in
            let config = try await pool.run { try registry.fetch(name: name, version: version) }
            let files: [SnapshotFile]
            do { files = try SnapshotConfig.decode(config) } catch let e as SnapshotterError {
                throw SnapshotterError(.registry, "inspect \(name):\(version): the registry's config is unusable: \(e.message)")
            }
            return SnapshotInfo(name: name, version: version, createdNanos: 0, lastAccessedNanos: 0, files: files, config: config)
        }
    }
}
