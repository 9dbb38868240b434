import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// Where a snapshot's file list is published (FORMAT.md sections 4 and 5).
public struct RegistrySettings: Sendable, Equatable {
    /// `http://host[:port]`, `https://host[:port]`, or `file:///path` for an
    /// OCI image layout directory.
    public var endpoint: String
    /// Repository prefix: the repository is `<namespace>/<name>`.
    public var namespace: String
    public var username: String?
    /// Never logged and never put in an error message.
    public var password: String?
    /// Skip TLS certificate verification.
    public var insecure: Bool
    /// PEM bundle of CAs to trust (e.g. a private registry's).
    public var caFile: String?
    /// The largest snapshot config published or fetched: the store's
    /// `StoreOptions.maxConfigBytes`, set when the store makes the registry.
    package var maxConfigBytes = SnapshotConfig.defaultMaxBytes
    /// Manifests (a few hundred bytes) larger than this are refused.
    package static let maxManifestBytes = 1 << 20
    public var connectTimeoutSeconds: Double = 10
    /// A transfer that moves nothing for this long fails.
    public var stallTimeoutSeconds: Double = 30
    /// Retries after connection failures, 429 and 5xx.
    public var retries: Int = 4
    /// First backoff; doubled each retry, with jitter.
    public var backoffMilliseconds: Int = 200

    public init(endpoint: String, namespace: String = "", username: String? = nil, password: String? = nil,
                insecure: Bool = false, caFile: String? = nil) {
        self.endpoint = endpoint
        self.namespace = namespace
        self.username = username
        self.password = password
        self.insecure = insecure
        self.caFile = caFile
    }

    public static func == (a: RegistrySettings, b: RegistrySettings) -> Bool {
        a.endpoint == b.endpoint && a.namespace == b.namespace && a.username == b.username && a.password == b.password
            && a.insecure == b.insecure && a.caFile == b.caFile && a.maxConfigBytes == b.maxConfigBytes
    }

    /// Refuses, before anything is pushed, a config the fetching side would
    /// refuse.
    package func checkConfigSize(_ bytes: Int, what: String) throws {
        guard bytes <= maxConfigBytes else {
            throw SnapshotterError.invalid("\(what): the snapshot config is \(bytes) bytes, over the limit of \(maxConfigBytes) bytes (max config bytes)")
        }
    }

    /// `<namespace>/<name>`, or just the name without a namespace.
    package func repository(_ name: String) -> String {
        let ns = namespace.trimmingCharacters(in: "/")
        return ns.isEmpty ? name : "\(ns)/\(name)"
    }
}

/// The OCI artifact of a snapshot: its config blob and manifest.
package enum SnapshotArtifact {
    package static let manifestMediaType = "application/vnd.oci.image.manifest.v1+json"
    package static let artifactType = "application/vnd.cncf.dragonfly.snapshotter.manifest.v1+json"
    package static let emptyMediaType = "application/vnd.oci.empty.v1+json"

    /// The manifest naming `config` (FORMAT.md section 5), `"layers":[]`.
    package static func manifest(config: [UInt8]) -> [UInt8] {
        var w = JSONWriter()
        w.raw("{\"schemaVersion\":2,\"mediaType\":")
        w.string(manifestMediaType)
        w.raw(",\"artifactType\":")
        w.string(artifactType)
        w.raw(",\"config\":{\"mediaType\":")
        w.string(SnapshotConfig.mediaType)
        w.raw(",\"digest\":")
        w.string(SHA256.digest(config))
        w.raw(",\"size\":\(config.count)},\"layers\":[]}")
        return w.bytes
    }

    package struct ConfigDescriptor: Sendable {
        package var digest: String
        package var size: Int
    }

    /// Checks a pulled manifest: OCI image manifest, our artifact type (or,
    /// without one, our config media type), a sha256 config descriptor.
    /// `layers` may be `[]`, `null`, absent, or the OCI empty descriptor.
    package static func parseManifest(_ bytes: [UInt8], what: String) throws -> ConfigDescriptor {
        let m: JSONValue
        do { m = try JSONValue.parse(bytes) } catch let e as SnapshotterError {
            throw SnapshotterError(.registry, "\(what): manifest is not valid JSON (\(e.message))")
        }
        func bad(_ why: String) -> SnapshotterError { SnapshotterError(.registry, "\(what): \(why)") }
        guard case .object = m else { throw bad("manifest is not a JSON object") }
        guard m["schemaVersion"]?.int64Value == 2 else { throw bad("manifest schemaVersion is not 2") }
        if let mt = m["mediaType"], !mt.isNull {
            guard mt.stringValue == manifestMediaType else {
                throw bad("manifest media type \(mt.stringValue ?? "?") is not \(manifestMediaType)")
            }
        }
        if let at = m["artifactType"], !at.isNull {
            guard at.stringValue == artifactType else {
                throw bad("artifact type \(at.stringValue ?? "?") is not a snapshot (\(artifactType))")
            }
        }
        guard let config = m["config"], case .object = config else { throw bad("manifest has no config descriptor") }
        guard config["mediaType"]?.stringValue == SnapshotConfig.mediaType else {
            throw bad("config media type \(config["mediaType"]?.stringValue ?? "?") is not \(SnapshotConfig.mediaType)")
        }
        guard let digest = config["digest"]?.stringValue, isSHA256Digest(digest) else {
            throw bad("config digest is not sha256:<64 hex>")
        }
        guard let size = config["size"]?.int64Value, size >= 0 else {
            throw bad("config size is missing or out of range")
        }
        if let layers = m["layers"], !layers.isNull {
            guard let items = layers.arrayValue else { throw bad("manifest layers is not an array") }
            for l in items where l["mediaType"]?.stringValue != emptyMediaType {
                throw bad("manifest has a layer of type \(l["mediaType"]?.stringValue ?? "?"); a snapshot has none")
            }
        }
        return ConfigDescriptor(digest: digest, size: Int(size))
    }

    package static func isSHA256Digest(_ d: String) -> Bool {
        guard d.hasPrefix("sha256:") else { return false }
        let hex = d.utf8.dropFirst(7)
        return hex.count == 64 && hex.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

/// A place snapshot metadata is published to and fetched from.
package protocol MetadataRegistry: Sendable {
    /// Pushes the config blob, then the manifest under `version`.
    func publish(name: String, version: String, config: [UInt8], cancel: CancellationFlag?) throws
    /// Pulls and checks the manifest and config; returns the config bytes.
    func fetch(name: String, version: String, cancel: CancellationFlag?) throws -> [UInt8]
    var endpointDescription: String { get }
}

extension MetadataRegistry {
    package func publish(name: String, version: String, config: [UInt8]) throws {
        try publish(name: name, version: version, config: config, cancel: nil)
    }

    package func fetch(name: String, version: String) throws -> [UInt8] {
        try fetch(name: name, version: version, cancel: nil)
    }
}

package func makeRegistry(_ settings: RegistrySettings, maxConfigBytes: Int = SnapshotConfig.defaultMaxBytes) throws -> any MetadataRegistry {
    guard SnapshotConfig.maxBytesRange.contains(maxConfigBytes) else {
        throw SnapshotterError.invalid("max config bytes \(maxConfigBytes) is outside \(SnapshotConfig.maxBytesRange)")
    }
    var settings = settings
    settings.maxConfigBytes = maxConfigBytes
    if settings.endpoint.hasPrefix("file://") {
        return try LayoutRegistry(settings)
    }
    guard settings.endpoint.hasPrefix("http://") || settings.endpoint.hasPrefix("https://") else {
        throw SnapshotterError.invalid("registry endpoint \(settings.endpoint.debugDescription) must start with http://, https:// or file://")
    }
    return try DistributionRegistry(settings)
}
