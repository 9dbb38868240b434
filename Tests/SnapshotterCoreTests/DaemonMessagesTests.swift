import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote


private func download(_ b: [UInt8]) throws -> DaemonMessages.DownloadResponse {
    try b.withUnsafeBytes { try DaemonMessages.downloadPersistentTaskResponse($0) }
}

private func health(_ b: [UInt8]) throws -> DaemonMessages.ServingStatus {
    try b.withUnsafeBytes { try DaemonMessages.healthCheckResponse($0) }
}

private func varint(_ v: UInt64) -> [UInt8] {
    var w = ProtoWire.Writer()
    w.varint(v)
    return w.bytes
}

/// Expects a transport error whose message names each of `parts`.
private func expectMalformed(_ parts: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("no error; expected one naming \(parts)", sourceLocation: sourceLocation)
    } catch let e as SnapshotterError {
        #expect(e.code == .transport, "\(e)", sourceLocation: sourceLocation)
        for p in parts {
            #expect(e.message.contains(p), "\(e.message.debugDescription) does not name \(p.debugDescription)", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

private let downloadName = "dfdaemon.v2.DownloadPersistentTaskResponse"
private let healthName = "grpc.health.v1.HealthCheckResponse"

/// The decoders on hostile input: every malformation is a transport error
/// naming the message and the field, never a trap.
@Suite("Daemon messages: hostile input")
struct DaemonMessagesHostileTests {
    @Test("An empty message is .other / .unknown")
    func empty() throws {
        #expect(try download([]) == .other)
        #expect(try health([]) == .unknown)
    }

    @Test("A truncated varint (tag, value, length) is refused")
    func truncatedVarint() {
        expectMalformed([downloadName, "a field tag", "truncated varint"]) { _ = try download([0x80]) }
        expectMalformed([healthName, "field 1 (status)", "truncated varint"]) { _ = try health([0x08, 0xFF, 0xFF]) }
        expectMalformed([downloadName, "field 4 (download_persistent_task_started_response)", "truncated varint"]) {
            _ = try download([0x22, 0x80])
        }
    }

    @Test("A varint of 11 bytes, or of 10 bytes past 64 bits, is refused")
    func longVarint() throws {
        let eleven: [UInt8] = [0x08] + [UInt8](repeating: 0xFF, count: 10) + [0x01]
        expectMalformed([healthName, "field 1 (status)", "longer than 10 bytes"]) { _ = try health(eleven) }
        let overflow: [UInt8] = [0x08] + [UInt8](repeating: 0xFF, count: 9) + [0x02]
        expectMalformed([healthName, "field 1 (status)", "overflows 64 bits"]) { _ = try health(overflow) }
        // The largest 10-byte varint is fine.
        let max: [UInt8] = [0x08] + [UInt8](repeating: 0xFF, count: 9) + [0x01]
        #expect(try health(max) == .other(UInt64.max))
        // A tag of 11 bytes.
        expectMalformed([downloadName, "a field tag", "longer than 10 bytes"]) {
            _ = try download([UInt8](repeating: 0x80, count: 10) + [0x01])
        }
    }

    @Test("A length past the end, or past Int.max, is refused")
    func lengthPastEnd() {
        expectMalformed([downloadName, "field 5 (download_piece_finished_response)", "length 5 past the end (1 bytes left)"]) {
            _ = try download([0x2A, 0x05, 0x08])
        }
        expectMalformed([downloadName, "field 1 (host_id)", "past the end"]) { _ = try download([0x0A] + varint(UInt64(Int.max) + 1)) }
        expectMalformed([downloadName, "field 2 (task_id)", "past the end"]) { _ = try download([0x12] + varint(UInt64.max)) }
        expectMalformed([downloadName, "field 99 (unknown)", "past the end"]) { _ = try download(varint(99 << 3 | 2) + varint(UInt64(Int.max))) }
        expectMalformed([healthName, "field 9 (unknown)", "8-byte value past the end"]) { _ = try health([0x49, 1, 2, 3]) }
        expectMalformed([healthName, "field 9 (unknown)", "4-byte value past the end"]) { _ = try health([0x4D, 1, 2, 3]) }
    }

    @Test("A declared field with another wire type is refused")
    func wrongWireType() {
        expectMalformed([downloadName, "field 4 (download_persistent_task_started_response)", "wire type 0"]) { _ = try download([0x20, 0x01]) }
        expectMalformed([healthName, "field 1 (status)", "wire type 2"]) { _ = try health([0x0A, 0x00]) }
        expectMalformed(["common.v2.Piece", "field 4 (length)", "wire type 5"]) {
            _ = try download([0x2A, 0x07, 0x0A, 0x05, 0x25, 1, 2, 3, 4])
        }
        expectMalformed([downloadName, "field 1 (host_id)", "wire type 1"]) { _ = try download([0x09] + [UInt8](repeating: 0, count: 8)) }
    }

    @Test("Groups (wire types 3 and 4) and wire types 6 and 7 are refused, known field or not")
    func groups() {
        expectMalformed([downloadName, "field 1", "group wire type 3"]) { _ = try download([0x0B, 0x0C]) }
        expectMalformed([healthName, "field 12", "group wire type 4"]) { _ = try health([0x64]) }
        expectMalformed([healthName, "field 12", "group wire type 3"]) { _ = try health([0x63, 0x64]) }
        expectMalformed([downloadName, "field 7", "invalid wire type 6"]) { _ = try download([0x3E]) }
        expectMalformed([downloadName, "field 7", "invalid wire type 7"]) { _ = try download([0x3F]) }
    }

    @Test("Field number 0, and one past 2^29-1, are refused")
    func fieldZero() {
        expectMalformed([downloadName, "field number 0"]) { _ = try download([0x00, 0x00]) }
        expectMalformed([healthName, "field number 0"]) { _ = try health([0x02, 0x00]) }
        expectMalformed([healthName, "field number 536870912 is out of range"]) { _ = try health(varint(536_870_912 << 3) + [0]) }
    }

    @Test("A nested message is decoded within its length, not its parent's buffer")
    func nestedOverrun() throws {
        // Piece (length 5) inside a DownloadPieceFinishedResponse of length 2:
        // the bytes are there, but past the parent's end.
        expectMalformed([downloadName, "dfdaemon.v2.DownloadPieceFinishedResponse", "field 1 (piece)", "length 5 past the end (0 bytes left)"]) {
            _ = try download([0x2A, 0x02, 0x0A, 0x05, 0x20, 0x07, 0x00, 0x00, 0x00])
        }
        // A varint running past the started message into its parent's bytes.
        expectMalformed(["dfdaemon.v2.DownloadPersistentTaskStartedResponse", "field 1 (content_length)", "truncated varint"]) {
            _ = try download([0x22, 0x02, 0x08, 0x80, 0x01])
        }
        // The same bytes with the right lengths decode.
        #expect(try download([0x2A, 0x07, 0x0A, 0x05, 0x20, 0x07, 0x18, 0x81, 0x01]) == .pieceFinished(length: 7))
        #expect(try download([0x22, 0x03, 0x08, 0x80, 0x01]) == .started(contentLength: 128))
    }

    @Test("Encodings: field-number order, defaults left out; output_path, region and endpoint always sent")
    func encodings() {
        #expect(DaemonMessages.healthCheckRequest(service: "") == [])
        #expect(DaemonMessages.healthCheckRequest(service: "a") == [0x0A, 0x01, 0x61])
        let up = DaemonMessages.uploadPersistentTaskRequest(url: "", objectStorage: .init(), path: "", replicas: 0, ttlSeconds: 0)
        #expect(up == [0x12, 0x04, 0x0A, 0x00, 0x12, 0x00])
        let down = DaemonMessages.downloadPersistentTaskRequest(url: "", objectStorage: .init(), outputPath: "", persistent: false, forceHardLink: true, needPieceContent: true)
        #expect(down == [0x12, 0x04, 0x0A, 0x00, 0x12, 0x00, 0x22, 0x00, 0x30, 0x01, 0x38, 0x01])
        let ttl = DaemonMessages.uploadPersistentTaskRequest(url: "", objectStorage: .init(), path: "", replicas: 0, ttlSeconds: -1)
        #expect(ttl == [0x12, 0x04, 0x0A, 0x00, 0x12, 0x00, 0x2A, 0x0B, 0x08] + [UInt8](repeating: 0xFF, count: 9) + [0x01])
    }
}

/// The codec against the official Python stubs (Tests/services/proto_vectors.py
/// run by the services venv's python): requests byte for byte, responses
/// decoded as the official parser decodes them.
@Suite("Daemon messages against the official stubs", .enabled(if: RegistryServices.available, "set SNAPSHOTTER_TEST_SERVICES (scripts/test.sh does)"))
struct DaemonMessagesVectorTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("services/proto_vectors.py").path

    static func python(_ args: [String]) throws -> Any {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try RegistryServices.value("SERVICES_PYTHON"))
        p.arguments = [script] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw TestError.setup("proto_vectors.py \(args.first ?? "") failed: \(String(decoding: errData, as: UTF8.self))")
        }
        return try JSONSerialization.jsonObject(with: data)
    }

    static func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    static func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = hex.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16) ?? 0) }
        return out
    }

    struct Case {
        let json: [String: Any]
        let swift: [UInt8]
    }

    static func storage(_ o: DaemonMessages.ObjectStorage) -> [String: Any] {
        ["region": o.region, "endpoint": o.endpoint, "access_key_id": o.accessKeyID,
         "access_key_secret": o.accessKeySecret, "session_token": o.sessionToken]
    }

    static func uploadCase(_ url: String, _ o: DaemonMessages.ObjectStorage, _ path: String, _ replicas: UInt64, _ ttl: Int64) -> Case {
        Case(json: ["kind": "upload", "url": url, "object_storage": storage(o), "path": path, "replicas": replicas, "ttl_seconds": ttl],
             swift: DaemonMessages.uploadPersistentTaskRequest(url: url, objectStorage: o, path: path, replicas: replicas, ttlSeconds: ttl))
    }

    static func downloadCase(_ url: String, _ o: DaemonMessages.ObjectStorage, _ out: String, _ persistent: Bool, _ hardLink: Bool, _ content: Bool) -> Case {
        Case(json: ["kind": "download", "url": url, "object_storage": storage(o), "output_path": out, "persistent": persistent,
                    "force_hard_link": hardLink, "need_piece_content": content],
             swift: DaemonMessages.downloadPersistentTaskRequest(url: url, objectStorage: o, outputPath: out, persistent: persistent,
                                                     forceHardLink: hardLink, needPieceContent: content))
    }

    static let all = DaemonMessages.ObjectStorage(region: "us-east-1", endpoint: "http://127.0.0.1:9000", accessKeyID: "AKIDEXAMPLE",
                                      accessKeySecret: "wJalrXUtnFEMI/K7MDENG", sessionToken: "FwoGZXIvYXdzEJr//////////wEaD")
    static let noSecrets = DaemonMessages.ObjectStorage(region: "eu-west-1", endpoint: "https://s3.example")
    static let url = "s3://snapshots/xxh3/0123456789abcdef"
    static let longURL = "s3://" + String(repeating: "b", count: 200) + "/xxh3/fedcba9876543210"

    static var cases: [Case] {
        [
            uploadCase(url, all, "/var/lib/snapshotter/content/01/0123456789abcdef", 3, 86_400),
            uploadCase("", .init(), "", 0, 0),
            uploadCase(url, noSecrets, "/p", 1, 0),
            uploadCase(longURL, all, "/tmp/snäp/ファイル 🙂", UInt64.max, -1),
            uploadCase(url, .init(accessKeySecret: "only-secret"), "/p", 0, Int64.max),
            downloadCase(url, all, "/out/ファイル ü", true, true, true),
            downloadCase("", .init(), "", false, false, false),
            downloadCase(url, noSecrets, "/out/a", true, true, false),
            downloadCase(longURL, .init(sessionToken: "tok"), "/o", false, false, true),
            Case(json: ["kind": "health", "service": "dfdaemon.v2.DfdaemonDownload"], swift: DaemonMessages.healthCheckRequest(service: "dfdaemon.v2.DfdaemonDownload")),
            Case(json: ["kind": "health", "service": ""], swift: DaemonMessages.healthCheckRequest(service: "")),
        ]
    }

    @Test("Requests encode to the bytes of the official stubs' SerializeToString")
    func requests() throws {
        let cases = Self.cases
        let input = try JSONSerialization.data(withJSONObject: cases.map(\.json))
        let official = try #require(try Self.python(["encode", String(decoding: input, as: UTF8.self)]) as? [String])
        try #require(official.count == cases.count)
        for (c, hex) in zip(cases, official) {
            #expect(Self.hex(c.swift) == hex, "\(c.json)")
        }
    }

    @Test("Responses built by the official stubs decode as the official parser decodes them")
    func responses() throws {
        let list = try #require(try Self.python(["responses"]) as? [[String: Any]])
        #expect(list.count >= 20)
        for r in list {
            let name = r["name"] as? String ?? "?"
            let bytes = Self.bytes(r["hex"] as? String ?? "")
            let decoded = try #require(r["decoded"] as? [String: Any])
            let kind = decoded["kind"] as? String ?? "?"
            let value = try #require(UInt64(decoded["value"] as? String ?? ""), "\(name)")
            let expected: String
            let got: String
            if r["kind"] as? String == "health" {
                expected = value <= 3 ? "health \(value)" : "health other \(value)"
                switch try health(bytes) {
                case .unknown: got = "health 0"
                case .serving: got = "health 1"
                case .notServing: got = "health 2"
                case .serviceUnknown: got = "health 3"
                case .other(let v): got = "health other \(v)"
                }
            } else {
                expected = kind == "other" ? "other" : "\(kind) \(value)"
                switch try download(bytes) {
                case .started(let n): got = "started \(n)"
                case .pieceFinished(let n): got = "piece \(n)"
                case .other: got = "other"
                }
            }
            #expect(got == expected, "\(name)")
        }
    }
}
