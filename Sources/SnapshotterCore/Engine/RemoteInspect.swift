extension Snapshotter {
    /// A published snapshot's files and config, from the registry alone:
    /// for tools that have no store (snapshotctl inspect without --root).
    public static func inspectRemote(registry settings: RegistrySettings, name: String, version: String) async throws -> SnapshotInfo {
        try Naming.validateName(name)
        try Naming.validateVersion(version)
        let registry = try makeRegistry(settings)
        let config = try await BlockingPool.shared.run { try registry.fetch(name: name, version: version) }
        let files: [SnapshotFile]
        do { files = try SnapshotConfig.decode(config) } catch let e as SnapshotterError {
            throw SnapshotterError(.registry, "inspect \(name):\(version): the registry's config is unusable: \(e.message)")
        }
        return SnapshotInfo(name: name, version: version, createdNanos: 0, lastAccessedNanos: 0, files: files, config: config)
    }
}
