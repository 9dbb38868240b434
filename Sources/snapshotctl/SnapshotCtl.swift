import ArgumentParser
import CSnapshotterABI
import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

@main
struct SnapshotCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshotctl",
        abstract: "Snapshot and restore sets of files through a content-addressed store.",
        discussion: """
        Exit status: 0 on success; otherwise 10 plus the status code of the \
        failure (11 invalid argument, 12 not found, 13 already exists, 14 I/O, \
        15 corrupt content, 18 canceled, 21 no space, 22 permission, ...), \
        with one line on stderr.
        """,
        version: SNAPSHOTTER_VERSION_STRING,
        subcommands: [Snapshot.self, Restore.self, List.self, Info.self, Inspect.self, Delete.self, Verify.self, GC.self, Stats.self]
    )
}

struct RootOptions: ParsableArguments {
    @Option(name: .long, help: "Store root directory (default: $SNAPSHOTTER_ROOT).")
    var root: String?

    @Flag(name: .shortAndLong, help: "No progress line.")
    var quiet = false

    @Option(name: .customLong("store-group"), help: "A group (name or number) that may read the store; default: only the owner.")
    var storeGroup: String?

    @Option(name: .customLong("record-format"),
            help: "Format of the snapshot records written: 1 (default, read by every release) or 3 (files in parts: a snapshot of any number of files commits in bounded memory; read from 0.3 on).")
    var recordFormat: UInt8?

    /// The --store-group as a gid.
    func groupID() throws -> UInt32? {
        guard let storeGroup else { return nil }
        if let n = UInt32(storeGroup), n != UInt32.max { return n }
        guard let g = getgrnam(storeGroup) else { throw ValidationError("--store-group: no group \(storeGroup.debugDescription)") }
        return g.pointee.gr_gid
    }

    func resolvedRoot() throws -> String {
        if let root, !root.isEmpty { return root }
        if let env = getenv("SNAPSHOTTER_ROOT"), env.pointee != 0 { return String(cString: env) }
        throw ValidationError("--root is required (or set SNAPSHOTTER_ROOT)")
    }

    func open(registry: RegistryOptions? = nil, content: ContentOptions? = nil, durableRestore: Bool = false) throws -> Snapshotter {
        var options = StoreOptions()
        options.gc.intervalSeconds = 0
        options.durableRestore = durableRestore
        options.registry = try registry?.settings()
        options.content = try content?.settings()
        options.storeGroup = try groupID()
        if let recordFormat {
            guard StoreOptions.recordFormats.contains(recordFormat) else {
                throw ValidationError("--record-format: \(recordFormat) is not one of \(StoreOptions.recordFormats.map(String.init).joined(separator: ", "))")
            }
            options.recordFormat = recordFormat
        }
        return try Snapshotter(root: try resolvedRoot(), options: options)
    }
}

/// Where content goes: `--content s3://bucket` (credentials from the
/// standard AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or
/// `--content file:///dir`.
struct ContentOptions: ParsableArguments {
    @Option(help: "Content storage: s3://bucket or file:///dir; with --dragonfly also oss://, obs://, cos://, gs://, abs://.") var content: String?
    @Option(name: .customLong("content-endpoint"), help: "Object storage endpoint (http(s)://host[:port]).") var endpoint: String?
    @Option(name: .customLong("content-region"), help: "Object storage region (default us-east-1).") var region: String?
    @Option(help: "Dragonfly daemon endpoint, unix:///path (content then goes through the peer daemon).") var dragonfly: String?
    @Flag(name: .customLong("dragonfly-fallback"), help: "Use the object storage directly when the Dragonfly daemon cannot be reached.")
    var dragonflyFallback = false

    func settings() throws -> ContentSettings? {
        guard let content, !content.isEmpty else {
            if let dragonfly, !dragonfly.isEmpty {
                throw SnapshotterError(.invalidArgument, "--dragonfly needs --content with the object storage bucket (s3://bucket)")
            }
            return nil
        }
        var s = ContentSettings(url: content)
        s.dragonflyEndpoint = dragonfly ?? ""
        s.dragonflyFallback = dragonflyFallback
        if let endpoint { s.endpoint = endpoint }
        if let region { s.region = region }
        func env(_ name: String) -> String { getenv(name).map { String(cString: $0) } ?? "" }
        s.accessKeyID = env("AWS_ACCESS_KEY_ID")
        s.secretAccessKey = env("AWS_SECRET_ACCESS_KEY")
        s.sessionToken = env("AWS_SESSION_TOKEN")
        return s
    }
}

/// Where snapshots are published: `--registry http(s)://host[:port]` or
/// `file:///dir`. The password comes from $SNAPSHOTTER_REGISTRY_PASSWORD or
/// --registry-password-file, never from the command line.
struct RegistryOptions: ParsableArguments {
    @Option(help: "OCI registry endpoint (http://, https:// or file:///dir).") var registry: String?
    @Option(help: "Repository namespace: snapshots go to <namespace>/<name>.") var namespace: String = ""
    @Option(name: .customLong("registry-username")) var username: String?
    @Option(name: .customLong("registry-password-file"), help: "File holding the registry password.") var passwordFile: String?
    @Flag(help: "Skip TLS certificate verification.") var insecure = false
    @Option(name: .customLong("ca-file"), help: "PEM CA bundle to trust for the registry.") var caFile: String?

    func settings() throws -> RegistrySettings? {
        guard let registry, !registry.isEmpty else { return nil }
        var password: String?
        if let passwordFile {
            guard let text = Console.readFile(passwordFile) else {
                throw SnapshotterError(.invalidArgument, "cannot read the registry password file \(passwordFile)")
            }
            var p = Substring(text)
            while p.last == "\n" || p.last == "\r" { p.removeLast() }
            password = String(p)
        } else if let env = getenv("SNAPSHOTTER_REGISTRY_PASSWORD") {
            password = String(cString: env)
        }
        return RegistrySettings(endpoint: registry, namespace: namespace, username: username, password: password,
                                insecure: insecure, caFile: caFile)
    }
}

/// Runs a command body; a library error becomes one line on stderr and an
/// exit status of 10 + its code.
func runReporting(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let e as SnapshotterError {
        Console.clearLine()
        Console.error("snapshotctl: \(e.message)")
        throw ExitCode(10 + e.code.rawValue)
    }
}

struct Snapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Snapshot files under a base directory.")
    @OptionGroup var common: RootOptions
    @Option(help: "Snapshot name (an OCI repository name).") var name: String
    @Option(help: "Snapshot version (an OCI tag).") var version: String
    @Option(name: .customLong("base-dir"), help: "Directory the relative paths are under.") var baseDir: String
    @Option(name: .customLong("ro"), help: "A read-only file (hard-linked into the store).") var readOnly: [String] = []
    @Option(name: .customLong("rw"), help: "A read-write file.") var readWrite: [String] = []
    @Option(name: .customLong("files-from"), help: "A file listing one 'ro PATH' or 'rw PATH' per line (for long lists).")
    var filesFrom: String?
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var content: ContentOptions

    func run() async throws {
        try await runReporting {
            let store = try common.open(registry: registry, content: content)
            var files = readOnly.map { FileRequest($0, readOnly: true) } + readWrite.map { FileRequest($0, readOnly: false) }
            if let filesFrom {
                // Appended to none, the list is taken as it is (not copied).
                if files.isEmpty { files = try Console.fileList(filesFrom) } else { files += try Console.fileList(filesFrom) }
            }
            guard !files.isEmpty else { throw SnapshotterError(.invalidArgument, "no files given (use --ro and --rw)") }
            let meter = Console.meter(quiet: common.quiet, verb: "snapshot")
            let started = Console.now()
            // Handed over: the engine lets the list go once it is prepared.
            let r = try await store.snapshot(SnapshotRequest(name: name, version: version, baseDir: baseDir, files: consume files,
                                                             reportFiles: false), progress: meter)
            Console.clearLine()
            print("snapshot \(name):\(version): \(r.fileCount) files, \(Console.bytes(r.totalSize)), "
                  + "\(r.filesStored) new content, \(r.filesKnownByInode) known by inode, "
                  + "\(Console.seconds(Console.now() - started))")
        }
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Restore a snapshot into a directory.")
    @OptionGroup var common: RootOptions
    @Option var name: String
    @Option var version: String
    @Option(help: "Directory to restore into (created if missing).") var output: String
    @Flag(help: "Replace files that already exist.") var overwrite = false
    @Flag(help: "fsync every written file and changed directory before reporting success (slower; survives a power loss).")
    var sync = false
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var content: ContentOptions

    func run() async throws {
        try await runReporting {
            let store = try common.open(registry: registry, content: content, durableRestore: sync)
            let meter = Console.meter(quiet: common.quiet, verb: "restore")
            let started = Console.now()
            let r = try await store.restore(RestoreRequest(name: name, version: version, outputDir: output, overwrite: overwrite),
                                            progress: meter)
            Console.clearLine()
            var line = "restore \(name):\(version): \(r.filesLinked) linked, \(r.filesDecoded) decoded"
            if r.filesCopied > 0 { line += ", \(r.filesCopied) copied (output is on another filesystem)" }
            print(line + ", \(Console.seconds(Console.now() - started))")
        }
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List snapshots.")
    @OptionGroup var common: RootOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await runReporting {
            let store = try common.open()
            let all = try await store.list()
            if json {
                let items = all.map { s in
                    "{\"name\":\(Console.quote(s.name)),\"version\":\(Console.quote(s.version)),"
                        + "\"created\":\(Console.quote(Console.time(s.createdNanos))),"
                        + "\"lastAccessed\":\(Console.quote(Console.time(s.lastAccessedNanos))),"
                        + "\"files\":\(s.fileCount),\"size\":\(s.totalSize)}"
                }
                print("[" + items.joined(separator: ",") + "]")
            } else {
                for s in all {
                    print("\(s.name):\(s.version)\t\(s.fileCount) files\t\(Console.bytes(s.totalSize))\tcreated \(Console.time(s.createdNanos))\taccessed \(Console.time(s.lastAccessedNanos))")
                }
            }
        }
    }
}

struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a snapshot's config (its file list) as JSON.")
    @OptionGroup var common: RootOptions
    @Option var name: String
    @Option var version: String

    func run() async throws {
        try await runReporting {
            let store = try common.open()
            let info = try await store.info(name: name, version: version)
            print(String(decoding: info.config, as: UTF8.self))
        }
    }
}

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a published snapshot's files, from the registry.")
    @OptionGroup var common: RootOptions
    @OptionGroup var registry: RegistryOptions
    @Option var name: String
    @Option var version: String
    @Flag(help: "Print the config JSON as published.") var json = false

    func run() async throws {
        try await runReporting {
            guard registry.registry != nil else { throw SnapshotterError(.invalidArgument, "inspect needs --registry") }
            // Only the registry is asked: no store is opened or created.
            guard let settings = try registry.settings() else { throw SnapshotterError(.invalidArgument, "inspect needs --registry") }
            let info = try await Snapshotter.inspectRemote(registry: settings, name: name, version: version)
            if json {
                print(String(decoding: info.config, as: UTF8.self))
            } else {
                for f in info.files {
                    print("\(f.digest)\t\(f.readOnly ? "ro" : "rw")\t\(f.size)\t\(f.relativePath)")
                }
            }
        }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a snapshot and the content only it used.")
    @OptionGroup var common: RootOptions
    @Option var name: String
    @Option var version: String

    func run() async throws {
        try await runReporting {
            let store = try common.open()
            let r = try await store.delete(name: name, version: version)
            print("deleted \(name):\(version): \(r.contentFilesRemoved) content files, \(Console.bytes(r.bytesFreed)) freed")
        }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Re-hash all content and check every record; exit 15 when anything is wrong.")
    @OptionGroup var common: RootOptions
    @Flag(help: "Fix what was found: drop snapshots whose content is gone or corrupt, rebuild records, references and links.")
    var repair = false

    func run() async throws {
        try await runReporting {
            let store = try common.open()
            let meter = Console.meter(quiet: common.quiet, verb: "verify")
            let r = try await store.verify(repair: repair, progress: meter)
            Console.clearLine()
            for p in r.problems { print(p.description) }
            for a in r.repairs { print("repaired: \(a)") }
            if repair && !r.problems.isEmpty {
                let after = try await store.verify()
                for p in after.problems { print("still: \(p.description)") }
                print("after repair: " + (after.isConsistent ? "consistent" : "\(after.problems.count) problems"))
                if !after.isConsistent { throw SnapshotterError(.corrupt, "the store still has \(after.problems.count) problems") }
                return
            }
            print("verified \(r.snapshotsChecked) snapshots, \(r.contentFilesChecked) content files, \(Console.bytes(r.bytesChecked)): "
                  + (r.isConsistent ? "consistent" : "\(r.problems.count) problems"))
            if !r.isConsistent { throw SnapshotterError(.corrupt, "the store has \(r.problems.count) problems") }
        }
    }
}

struct GC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Collect now: evict least recently used snapshots above the disk watermark, remove orphans.")
    @OptionGroup var common: RootOptions
    @Option(name: .customLong("high-watermark"), help: "Disk use (percent) that starts eviction (default 90).") var high: Double?
    @Option(name: .customLong("low-watermark"), help: "Disk use (percent) where eviction stops (default 70).") var low: Double?
    @Option(name: .customLong("min-retention"), help: "Seconds since last access before a snapshot may go (default 300).") var minRetention: Double?
    @Option(name: .customLong("batch-size"), help: "Snapshots evicted per round (default 10).") var batchSize: Int?
    @Option(name: .customLong("max-store-bytes"), help: "Byte budget for the store; 0 for none.") var maxStoreBytes: Int64?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await runReporting {
            let store = try common.open()
            var policy = GCPolicy()
            if let high { policy.highWatermarkPercent = high }
            if let low { policy.lowWatermarkPercent = low }
            if let minRetention { policy.minRetentionSeconds = minRetention }
            if let batchSize { policy.batchSize = batchSize }
            if let maxStoreBytes { policy.maxStoreBytes = maxStoreBytes }
            let r = try await store.gc(policy: policy)
            if json {
                print("{\"snapshotsEvicted\":\(r.snapshotsEvicted),\"contentFilesRemoved\":\(r.contentFilesRemoved),"
                      + "\"bytesFreed\":\(r.bytesFreed),\"orphansRemoved\":\(r.orphansRemoved),\"elapsedNs\":\(r.elapsedNanos)}")
            } else {
                print("gc: evicted \(r.snapshotsEvicted) snapshots, removed \(r.contentFilesRemoved) content files "
                      + "(\(Console.bytes(r.bytesFreed))) and \(r.orphansRemoved) orphans in \(Console.seconds(Double(r.elapsedNanos) / 1e9))")
            }
        }
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Store usage: bytes, content files, snapshots, oldest access, disk.")
    @OptionGroup var common: RootOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await runReporting {
            let store = try common.open()
            let s = try await store.stats()
            let oldest = s.oldestAccessNanos.map { Console.time($0) }
            if json {
                print("{\"storeBytes\":\(s.storeBytes),\"contentFiles\":\(s.contentFiles),\"snapshots\":\(s.snapshots),"
                      + "\"oldestAccess\":\(oldest.map(Console.quote) ?? "null"),\"diskTotalBytes\":\(s.disk.totalBytes),"
                      + "\"diskUsedBytes\":\(s.disk.usedBytes)}")
            } else {
                print("store: \(Console.bytes(s.storeBytes)) in \(s.contentFiles) content files, \(s.snapshots) snapshots")
                print("oldest access: \(oldest ?? "none")")
                print("disk: \(Console.bytes(s.disk.usedBytes)) of \(Console.bytes(s.disk.totalBytes)) used (\(Int(s.disk.usedPercent))%)")
            }
        }
    }
}
