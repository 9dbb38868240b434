// A client imports SnapshotterCore alone: the engine's API speaks in the
// public types of the layers below it (Digest, SnapshotFile,
// RegistrySettings, SnapshotterError, ...).
@_exported import SnapshotterSystem
@_exported import SnapshotterStore
@_exported import SnapshotterMetadata
@_exported import SnapshotterRemote
