import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// Content transport settings. `url` picks the transport: `s3://bucket`
/// (also `oss`, `obs`, `cos`, `gs`, `abs` through Dragonfly, with
/// `dragonflyEndpoint` set), or
/// `file:///dir` for a plain directory.
public struct ContentSettings: Sendable, Equatable {
    public var url: String
    /// Object storage endpoint, e.g. `http://127.0.0.1:9000` or
    /// `https://s3.eu-west-1.amazonaws.com`.
    public var endpoint: String = ""
    public var region: String = "us-east-1"
    public var accessKeyID: String = ""
    /// Never logged and never put in an error message.
    public var secretAccessKey: String = ""
    public var sessionToken: String = ""
    /// Files downloaded at once during a restore.
    public var downloadConcurrency: Int = 4
    /// Objects at least this large are uploaded in parts.
    public var multipartThreshold: Int64 = 64 << 20
    public var partSize: Int64 = 16 << 20
    public var connectTimeoutSeconds: Double = 10
    public var stallTimeoutSeconds: Double = 30
    /// Resumes and retries after a dropped connection.
    public var retries: Int = 4
    /// The Dragonfly peer daemon's socket, `unix:///path`; empty: no
    /// Dragonfly (the object storage or directory of `url` directly).
    public var dragonflyEndpoint: String = ""
    /// Use the object storage directly (s3:// only) when the daemon cannot
    /// be reached.
    public var dragonflyFallback: Bool = false
    /// Persistent replicas the daemon is asked to keep of each upload.
    public var replicas: UInt64 = 3
    /// Time to live of uploaded tasks in seconds; 0: the daemon's default.
    public var ttlSeconds: Int64 = 0

    public init(url: String) { self.url = url }

    package var scheme: String { url.split(separator: ":").first.map(String.init) ?? "" }

    /// The bucket of an object-storage URL (`s3://bucket[/prefix]`).
    package var bucket: String {
        let rest = url.dropFirst(scheme.count + 3)
        return String(rest.split(separator: "/", omittingEmptySubsequences: true).first ?? "")
    }
}
