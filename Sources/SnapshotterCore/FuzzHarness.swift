import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote
/// The parsers of outside data, one entry point each, for the libFuzzer
/// driver (Tests/fuzz) and for the regular test that replays its corpora
/// and every crash it found. Errors are the expected outcome of bad input;
/// only a trap (or a broken round trip, checked with `precondition`) is a
/// finding.
public enum FuzzHarness {
    public static let targets = ["spf1", "json", "config", "manifest", "rfc3339", "www-authenticate", "s3-xml", "records", "daemon-proto", "grpc-frames"]

    /// Feeds `data` to `target`; false for a target that does not exist.
    @discardableResult
    public static func run(_ target: String, _ data: [UInt8]) -> Bool {
        switch target {
        case "spf1": spf1(data)
        case "json": _ = try? JSONValue.parse(data)
        case "config": config(data)
        case "manifest": _ = try? SnapshotArtifact.parseManifest(data, what: "fuzz")
        case "rfc3339": rfc3339(data)
        case "www-authenticate": _ = AuthChallenge.parse(String(decoding: data, as: UTF8.self))
        case "s3-xml": for tag in ["Code", "Message", "UploadId"] { _ = S3Transport.xmlValue(data, tag) }
        case "records": records(data)
        case "daemon-proto": daemonProto(data)
        case "grpc-frames": grpcFrames(data)
        default: return false
        }
        return true
    }

    /// The push decoder fed in pieces whose size the first byte picks, with
    /// the stream length known or not (the low bit of the second byte).
    static func spf1(_ data: [UInt8]) {
        guard data.count >= 2 else { return }
        let piece = Int(data[0]) + 1
        let stream = Array(data.dropFirst(2))
        var d = SPF1.Decoder(name: "fuzz", to: nil, streamLength: data[1] & 1 == 0 ? Int64(stream.count) : nil)
        stream.withUnsafeBytes { raw in
            var at = 0
            while at < raw.count {
                let n = min(piece, raw.count - at)
                do { try d.feed(UnsafeRawBufferPointer(rebasing: raw[at..<(at + n)])) } catch { return }
                at += n
            }
            _ = try? d.finish()
        }
    }

    /// A config that decodes must encode and decode to the same files.
    static func config(_ data: [UInt8]) {
        guard let files = try? SnapshotConfig.decode(data) else { return }
        let again = try? SnapshotConfig.decode(SnapshotConfig.encode(files))
        let sorted = files.sorted { PathGuard.precedes($0.relativePath, $1.relativePath) }
        precondition(again == sorted, "config round trip changed the files")
    }

    /// A time that parses must format and parse to the same instant.
    static func rfc3339(_ data: [UInt8]) {
        guard let t = try? RFC3339.parse(String(decoding: data, as: UTF8.self)) else { return }
        precondition((try? RFC3339.parse(RFC3339.format(nanos: t))) == t, "RFC 3339 round trip changed \(t)")
    }

    /// The LMDB record decoders; the first byte picks one.
    static func records(_ data: [UInt8]) {
        guard let kind = data.first else { return }
        let rest = Array(data.dropFirst())
        rest.withUnsafeBytes { raw in
            switch kind % 7 {
            case 0: _ = try? SnapshotRecord.decode(raw, key: "fuzz")
            case 5: recordInParts(raw)
            case 1: _ = try? ContentRecord.decode(raw, digest: Digest(0))
            case 2: _ = try? InodeRecord.decode(raw)
            case 3: _ = try? Lease.decode(key: [], raw)
            case 4: _ = try? SnapshotKey(bytes: raw)
            default: _ = try? Digest(key: raw)
            }
        }
    }

    /// A version 3 record: a header of the length the first byte gives,
    /// then parts, each after its length (2 bytes).
    static func recordInParts(_ raw: UnsafeRawBufferPointer) {
        guard let n = raw.first.map(Int.init), n < raw.count else { return }
        let header = UnsafeRawBufferPointer(rebasing: raw[1..<(n + 1)])
        var parts: [UnsafeRawBufferPointer] = []
        var at = n + 1
        while at + 2 <= raw.count {
            let len = Int(raw[at]) << 8 | Int(raw[at + 1])
            let end = min(raw.count, at + 2 + len)
            parts.append(UnsafeRawBufferPointer(rebasing: raw[(at + 2)..<end]))
            at = end
        }
        _ = try? SnapshotRecord.decode(header, key: "fuzz", part: { $0 >= 0 && $0 < parts.count ? parts[$0] : nil })
    }

    /// A gRPC response body fed in pieces whose size the first byte picks,
    /// each message decoded as a daemon download response; the rest of the
    /// input also goes through the grpc-message decoder.
    static func grpcFrames(_ data: [UInt8]) {
        guard let first = data.first else { return }
        let piece = Int(first) + 1
        let body = Array(data.dropFirst())
        var d = GRPCFrameDecoder(maxMessageBytes: 1 << 16)
        body.withUnsafeBytes { raw in
            var at = 0
            while at < raw.count {
                let n = min(piece, raw.count - at)
                do {
                    try d.feed(UnsafeRawBufferPointer(rebasing: raw[at..<(at + n)])) { _ = try? DaemonMessages.downloadPersistentTaskResponse($0) }
                } catch { return }
                at += n
            }
            _ = try? d.finish()
        }
        _ = GRPCChannel.statusMessage(String(decoding: body, as: UTF8.self))
    }

    /// The Dragonfly daemon's response decoders; the first byte picks one.
    static func daemonProto(_ data: [UInt8]) {
        guard let kind = data.first else { return }
        let rest = Array(data.dropFirst())
        rest.withUnsafeBytes { raw in
            switch kind % 2 {
            case 0: _ = try? DaemonMessages.downloadPersistentTaskResponse(raw)
            default: _ = try? DaemonMessages.healthCheckResponse(raw)
            }
        }
    }
}
