import CSnapshotterABI
import SnapshotterCore

// The one table of numbered options: the numbers are the header's names
// (include/snapshotter.h through CSnapshotterABI), each with its name in
// messages, its type, its range and where it goes. Adding an option is
// the header, the engine setting, and one row here.

enum OptionSetting: Sendable {
    case int(ClosedRange<Int64>, @Sendable (OptionsHandle, Int64) -> Void)
    case string(@Sendable (OptionsHandle, String?) throws -> Void)
}

struct OptionSpec: Sendable {
    let name: String
    let setting: OptionSetting
}

private func opt(_ o: snapshotter_option) -> Int32 { Int32(o.rawValue) }

let optionTable: [Int32: OptionSpec] = [
    opt(SNAPSHOTTER_OPT_SNAPSHOT_CONCURRENCY): OptionSpec(name: "snapshot concurrency", setting: .int(1...1024) { $0.store.snapshotConcurrency = Int($1) }),
    opt(SNAPSHOTTER_OPT_RESTORE_CONCURRENCY): OptionSpec(name: "restore concurrency", setting: .int(1...1024) { $0.store.restoreConcurrency = Int($1) }),
    opt(SNAPSHOTTER_OPT_METADATA_MAP_SIZE): OptionSpec(name: "metadata map size", setting: .int(1 << 20...(1 << 46)) { $0.store.metadataMapSize = Int($1) }),
    opt(SNAPSHOTTER_OPT_PROGRESS_INTERVAL_US): OptionSpec(name: "progress interval", setting: .int(0...60_000_000) { $0.store.progressIntervalNanos = UInt64($1) * 1000 }),
    opt(SNAPSHOTTER_OPT_STORE_GROUP): OptionSpec(name: "store group", setting: .int(-1...Int64(UInt32.max - 1)) { $0.store.storeGroup = $1 < 0 ? nil : UInt32($1) }),
    opt(SNAPSHOTTER_OPT_MAX_CONFIG_BYTES): OptionSpec(name: "max config bytes",
        setting: .int(Int64(StoreOptions.maxConfigBytesRange.lowerBound)...Int64(StoreOptions.maxConfigBytesRange.upperBound)) { $0.store.maxConfigBytes = Int($1) }),
    opt(SNAPSHOTTER_OPT_DURABLE_RESTORE): OptionSpec(name: "durable restore", setting: .int(0...1) { $0.store.durableRestore = $1 != 0 }),
    opt(SNAPSHOTTER_OPT_RECORD_FORMAT): OptionSpec(name: "record format",
        setting: .int(Int64(StoreOptions.recordFormats.lowerBound)...Int64(StoreOptions.recordFormats.upperBound)) { $0.store.recordFormat = UInt8($1) }),

    opt(SNAPSHOTTER_OPT_REGISTRY_ENDPOINT): OptionSpec(name: "registry endpoint", setting: .string { $0.registry.endpoint = $1 ?? "" }),
    opt(SNAPSHOTTER_OPT_REGISTRY_NAMESPACE): OptionSpec(name: "registry namespace", setting: .string { $0.registry.namespace = $1 ?? "" }),
    opt(SNAPSHOTTER_OPT_REGISTRY_USERNAME): OptionSpec(name: "registry username", setting: .string { $0.registry.username = $1 }),
    opt(SNAPSHOTTER_OPT_REGISTRY_PASSWORD): OptionSpec(name: "registry password", setting: .string { $0.registry.password = $1 }),
    opt(SNAPSHOTTER_OPT_REGISTRY_INSECURE): OptionSpec(name: "registry insecure", setting: .int(0...1) { $0.registry.insecure = $1 != 0 }),
    opt(SNAPSHOTTER_OPT_REGISTRY_CA_FILE): OptionSpec(name: "registry CA file", setting: .string { $0.registry.caFile = $1 }),

    opt(SNAPSHOTTER_OPT_CONTENT_URL): OptionSpec(name: "content URL", setting: .string { $0.content.url = $1 ?? "" }),
    opt(SNAPSHOTTER_OPT_CONTENT_ENDPOINT): OptionSpec(name: "content endpoint", setting: .string { $0.content.endpoint = $1 ?? "" }),
    opt(SNAPSHOTTER_OPT_CONTENT_REGION): OptionSpec(name: "content region", setting: .string { $0.content.region = $1.flatMap { $0.isEmpty ? nil : $0 } ?? "us-east-1" }),
    opt(SNAPSHOTTER_OPT_CONTENT_ACCESS_KEY_ID): OptionSpec(name: "content access key id", setting: .string { $0.content.accessKeyID = $1 ?? "" }),
    opt(SNAPSHOTTER_OPT_CONTENT_SECRET_ACCESS_KEY): OptionSpec(name: "content secret access key", setting: .string { $0.content.secretAccessKey = $1 ?? "" }),
    opt(SNAPSHOTTER_OPT_CONTENT_SESSION_TOKEN): OptionSpec(name: "content session token", setting: .string { $0.content.sessionToken = $1 ?? "" }),
    opt(SNAPSHOTTER_OPT_DRAGONFLY_ENDPOINT): OptionSpec(name: "Dragonfly endpoint", setting: .string { $0.content.dragonflyEndpoint = $1 ?? "" }),
    opt(SNAPSHOTTER_OPT_DRAGONFLY_FALLBACK): OptionSpec(name: "Dragonfly fallback", setting: .int(0...1) { $0.content.dragonflyFallback = $1 != 0 }),
    opt(SNAPSHOTTER_OPT_DRAGONFLY_REPLICAS): OptionSpec(name: "Dragonfly replicas", setting: .int(1...1000) { $0.content.replicas = UInt64($1) }),
    opt(SNAPSHOTTER_OPT_DRAGONFLY_TTL_SECONDS): OptionSpec(name: "Dragonfly TTL", setting: .int(0...(86_400 * 365 * 10)) { $0.content.ttlSeconds = $1 }),
    opt(SNAPSHOTTER_OPT_DOWNLOAD_CONCURRENCY): OptionSpec(name: "download concurrency", setting: .int(1...256) { $0.content.downloadConcurrency = Int($1) }),

    opt(SNAPSHOTTER_OPT_GC_INTERVAL_SECONDS): OptionSpec(name: "GC interval", setting: .int(0...(86_400 * 365)) { $0.store.gc.intervalSeconds = Double($1) }),
    opt(SNAPSHOTTER_OPT_GC_HIGH_WATERMARK_PERCENT): OptionSpec(name: "GC high watermark", setting: .int(0...100) { $0.store.gc.highWatermarkPercent = Double($1) }),
    opt(SNAPSHOTTER_OPT_GC_LOW_WATERMARK_PERCENT): OptionSpec(name: "GC low watermark", setting: .int(0...100) { $0.store.gc.lowWatermarkPercent = Double($1) }),
    opt(SNAPSHOTTER_OPT_GC_BATCH_SIZE): OptionSpec(name: "GC batch size", setting: .int(1...1_000_000) { $0.store.gc.batchSize = Int($1) }),
    opt(SNAPSHOTTER_OPT_GC_MIN_RETENTION_SECONDS): OptionSpec(name: "GC minimum retention", setting: .int(0...(86_400 * 365 * 10)) { $0.store.gc.minRetentionSeconds = Double($1) }),
    opt(SNAPSHOTTER_OPT_GC_MAX_STORE_BYTES): OptionSpec(name: "GC store byte budget", setting: .int(0...Int64.max) { $0.store.gc.maxStoreBytes = $1 }),
    opt(SNAPSHOTTER_OPT_GC_ORPHAN_GRACE_SECONDS): OptionSpec(name: "GC orphan grace", setting: .int(0...(86_400 * 365)) { $0.store.gc.orphanGraceSeconds = Double($1) }),
]

private func spec(_ option: Int32) throws -> OptionSpec {
    guard let s = optionTable[option] else { throw SnapshotterError(.invalidArgument, "unknown option \(option)") }
    return s
}

@_cdecl("snapshotter_options_set_int")
public func snapshotter_options_set_int(_ opts: OpaquePointer?, _ option: Int32, _ value: Int64) -> Int32 {
    guarded {
        let o = try Handles.require(opts, OptionsHandle.self, "options")
        let s = try spec(option)
        guard case .int(let range, let set) = s.setting else {
            throw SnapshotterError(.invalidArgument, "option \(option) (\(s.name)) takes a string")
        }
        guard range.contains(value) else {
            throw SnapshotterError(.invalidArgument, "option \(option) (\(s.name)): \(value) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        set(o, value)
        return Status.ok
    }
}

@_cdecl("snapshotter_options_set_string")
public func snapshotter_options_set_string(_ opts: OpaquePointer?, _ option: Int32, _ value: UnsafePointer<CChar>?) -> Int32 {
    guarded {
        let o = try Handles.require(opts, OptionsHandle.self, "options")
        let s = try spec(option)
        guard case .string(let set) = s.setting else {
            throw SnapshotterError(.invalidArgument, "option \(option) (\(s.name)) takes an integer")
        }
        try set(o, try value.map { try cString($0, "option \(option) (\(s.name))", allowEmpty: true) })
        return Status.ok
    }
}
