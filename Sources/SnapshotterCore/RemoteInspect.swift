import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote
extension Snapshotter {
    /// A published snapshot's files and config, straight from the store's
    /// registry (nothing is recorded or fetched besides the metadata).
    public func inspectRemote(name: String, version: String) async throws -> SnapshotInfo {
        try Naming.validateName(name)
        try Naming.validateVersion(version)
        guard let registry = self.registry else {
            throw SnapshotterError.invalid("inspect \(name):\(version): no registry is configured")
        }
        return try await operation(nil) { _ in
            try await Self.fetchPublished(registry, name: name, version: version, pool: pool)
        }
    }

    /// The same from the registry alone: for tools that have no store
    /// (snapshotctl inspect without --root).
    public static func inspectRemote(registry settings: RegistrySettings, name: String, version: String) async throws -> SnapshotInfo {
        try Naming.validateName(name)
        try Naming.validateVersion(version)
        return try await fetchPublished(try makeRegistry(settings), name: name, version: version, pool: .shared)
    }

    private static func fetchPublished(_ registry: any MetadataRegistry, name: String, version: String,
                                       pool: BlockingPool) async throws -> SnapshotInfo {
        let config = try await pool.run { try registry.fetch(name: name, version: version) }
        let files: [SnapshotFile]
        do { files = try SnapshotConfig.decode(config) } catch let e as SnapshotterError {
            throw SnapshotterError(.registry, "inspect \(name):\(version): the registry's config is unusable: \(e.message)")
        }
        return SnapshotInfo(name: name, version: version, createdNanos: 0, lastAccessedNanos: 0, files: files, givenConfig: config)
    }
}
