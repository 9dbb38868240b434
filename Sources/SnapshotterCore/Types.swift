import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote
/// Settings of an open store. Defaults are chosen for a small node: I/O
/// bound work on a few cores gains from a little more width than cores.
public struct StoreOptions: Sendable {
    /// Files processed at once within one snapshot.
    public var snapshotConcurrency: Int = 4
    /// Files processed at once within one restore.
    public var restoreConcurrency: Int = 4
    /// Largest size the metadata database may grow to (virtual; LMDB maps
    /// it but only uses what it writes).
    public var metadataMapSize: Int = 64 << 30
    /// Least time between two intermediate progress events; phase changes
    /// and the final event always go out.
    public var progressIntervalNanos: UInt64 = 2_000_000
    /// Where snapshots are published and found; nil keeps them local.
    public var registry: RegistrySettings?
    /// Where content is uploaded and downloaded; nil keeps it local.
    public var content: ContentSettings?
    /// Garbage-collection policy for `gc()` and the background collector.
    public var gc = GCPolicy()
    /// A group that may read the store (its directories, content and
    /// metadata); nil: only the owner may (docs/store-health.md).
    public var storeGroup: UInt32?
    /// Restore makes each file it writes, and each directory it changes,
    /// durable (fsync) before it reports success. Off by default, as with
    /// cp: a power loss soon after a restore may then leave files empty
    /// under their final names (docs/store-health.md).
    public var durableRestore = false
    /// The largest snapshot config (its JSON) a snapshot may publish and a
    /// restore may fetch: one limit for both sides, so what is published
    /// can be restored. The default fits a million files with paths of
    /// ~300 bytes (a config entry is about 200 bytes plus its path).
    public var maxConfigBytes = StoreOptions.defaultMaxConfigBytes
    /// The format of the snapshot records this store writes: 1 (the
    /// default: every 0.x release reads it), 2 (no copy of the config) or 3
    /// (the files in parts: a local snapshot of any number of files commits
    /// a group of parts at a time, in memory that does not grow with the
    /// count). Releases before 0.3 refuse snapshots of versions 2 and 3
    /// (README, Compatibility); every record is read whatever this says.
    public var recordFormat: UInt8 = SnapshotRecord.writtenVersion
    public static let recordFormats = SnapshotRecord.readVersions
    /// Files a snapshot committed in groups (record format 3) stores and
    /// commits at a time (a seam for tests).
    package var groupFiles = 4 * SnapshotRecord.partFiles
    /// A snapshot of more files than this is committed in groups; one of
    /// fewer in one transaction, which is faster and at this count well
    /// within 64 MiB (a seam for tests).
    package var groupsAbove = 32 * SnapshotRecord.partFiles
    public static let defaultMaxConfigBytes = SnapshotConfig.defaultMaxBytes
    public static let maxConfigBytesRange = SnapshotConfig.maxBytesRange
    /// How disk usage is measured (a seam for tests).
    public var diskUsage: any DiskUsageProvider = StatvfsDiskUsage()

    public init() {}
}

/// A file to put into a snapshot.
public struct FileRequest: Sendable, Equatable {
    public var relativePath: String
    public var readOnly: Bool

    public init(_ relativePath: String, readOnly: Bool = false) {
        self.relativePath = relativePath
        self.readOnly = readOnly
    }
}

public struct SnapshotRequest: Sendable {
    public var name: String
    public var version: String
    public var baseDir: String
    public var files: [FileRequest]
    /// Whether the report lists the snapshot's files (`info.files`). Without
    /// them the commit drops its list once the record holds it, so the list
    /// and the whole record are not resident together; `info(name:version:)`
    /// reads them from the store.
    public var reportFiles: Bool

    public init(name: String, version: String, baseDir: String, files: [FileRequest], reportFiles: Bool = true) {
        self.name = name
        self.version = version
        self.baseDir = baseDir
        self.files = files
        self.reportFiles = reportFiles
    }
}

public struct RestoreRequest: Sendable {
    public var name: String
    public var version: String
    public var outputDir: String
    /// Replace files that already exist at target paths.
    public var overwrite: Bool

    public init(name: String, version: String, outputDir: String, overwrite: Bool = false) {
        self.name = name
        self.version = version
        self.outputDir = outputDir
        self.overwrite = overwrite
    }
}

/// What a snapshot recorded.
public struct SnapshotInfo: Sendable, Equatable {
    public var name: String
    public var version: String
    /// Nanoseconds since the Unix epoch.
    public var createdNanos: Int64
    public var lastAccessedNanos: Int64
    /// Sorted by path.
    public var files: [SnapshotFile]
    /// The config as published when it is not the canonical encoding of
    /// `files` (a config fetched from a registry).
    public var givenConfig: [UInt8]?

    /// The config JSON exactly as it is (or will be) published; made when
    /// asked for, as it is as large as the file list.
    public var config: [UInt8] { givenConfig ?? SnapshotConfig.encode(files) }

    public var fileCount: Int { files.count }
    public var totalSize: Int64 { files.saturatingTotal(\.size) }

    public init(name: String, version: String, createdNanos: Int64, lastAccessedNanos: Int64,
                files: [SnapshotFile], givenConfig: [UInt8]?) {
        self.name = name
        self.version = version
        self.createdNanos = createdNanos
        self.lastAccessedNanos = lastAccessedNanos
        self.files = files
        self.givenConfig = givenConfig
    }

    public static func == (a: SnapshotInfo, b: SnapshotInfo) -> Bool {
        a.name == b.name && a.version == b.version && a.createdNanos == b.createdNanos
            && a.lastAccessedNanos == b.lastAccessedNanos && a.files == b.files
            && (a.givenConfig == b.givenConfig || a.config == b.config)
    }
}

/// A snapshot in a listing.
public struct SnapshotSummary: Sendable, Equatable {
    public var name: String
    public var version: String
    public var createdNanos: Int64
    public var lastAccessedNanos: Int64
    public var fileCount: Int
    public var totalSize: Int64
}

public struct SnapshotReport: Sendable, Equatable {
    /// Its `files` are empty when the request did not ask for them.
    public var info: SnapshotInfo
    public var fileCount: Int
    public var totalSize: Int64
    /// Files whose content was new to the store.
    public var filesStored: Int
    /// Read-only files recognised by inode without being read.
    public var filesKnownByInode: Int
    public var bytesRead: Int64
}

public struct RestoreReport: Sendable, Equatable {
    public var filesLinked: Int
    /// Read-only files copied because the output is on another filesystem.
    public var filesCopied: Int
    public var filesDecoded: Int
    public var bytesWritten: Int64
}

public struct DeleteReport: Sendable, Equatable {
    public var contentFilesRemoved: Int
    public var bytesFreed: Int64
    /// What the store's accounting (`stats().storeBytes`) drops by.
    public var storeBytesReleased: Int64 = 0
}

/// One thing `verify` found wrong.
public struct VerifyProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case missingContent = "missing-content"
        case corruptContent = "corrupt-content"
        case missingLink = "missing-link"
        case corruptLink = "corrupt-link"
        case missingContentRecord = "missing-content-record"
        case missingReference = "missing-reference"
        case danglingReference = "dangling-reference"
        case orphanContent = "orphan-content"
        case badRecord = "bad-record"
    }

    public var kind: Kind
    public var digest: Digest?
    public var snapshot: String?
    public var message: String

    public var description: String { "\(kind.rawValue): \(message)" }
}

public struct VerifyReport: Sendable, Equatable {
    public var snapshotsChecked: Int
    public var contentFilesChecked: Int
    public var bytesChecked: Int64
    public var problems: [VerifyProblem]
    /// What `verify(repair: true)` did, one line each; the problems above
    /// are those found before repairing.
    public var repairs: [String] = []
    /// No problem but orphan content files, which crashed or canceled
    /// snapshots leave behind and the collector sweeps: they are reported,
    /// not held against the store.
    public var isConsistent: Bool { problems.allSatisfy { $0.kind == .orphanContent } }
}
