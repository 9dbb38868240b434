import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// The snapshot config (FORMAT.md section 4): written byte for byte the way
/// the Go version's encoding/json writes it, sorted by path; read leniently
/// (unknown fields, any order) but never with a path that escapes.
@Suite("Snapshot config JSON")
struct ConfigTests {
    static let t2025: Int64 = 1_764_431_829 // 2025-11-29T15:57:09Z

    static func file(_ path: String, _ digest: UInt64, readOnly: Bool = false, mode: UInt32 = 0o644, uid: UInt32 = 0,
                     gid: UInt32 = 0, size: Int64, mtime: Int64) -> SnapshotFile {
        SnapshotFile(relativePath: path, digest: Digest(digest), readOnly: readOnly, mode: mode, uid: uid, gid: gid,
                     size: size, mtimeNanos: mtime)
    }

    static let example: [SnapshotFile] = [
        file("ckpt1/state", 0x6b1e182d921cd510, readOnly: true, size: 12, mtime: t2025 * 1_000_000_000 + 123_456_789),
        file("é.txt", 0xff, size: 1, mtime: -1),
        file("a/b<&>.txt", 0x04306cff25f646ff, mode: 0o600, uid: 1000, gid: 1001, size: 0, mtime: t2025 * 1_000_000_000 + 500_000_000),
        file("Z", 1, mode: 0o755, size: 5, mtime: 0),
        file("ckpt1-x", 0xabc, size: 3, mtime: t2025 * 1_000_000_000 + 120_000_000),
    ]

    @Test("encode is byte-exact: sorted by path, compact Go-style JSON, RFC 3339 UTC with trimmed fraction")
    func encodeIsByteExact() {
        let expected = #"{"files":["#
            + #"{"digest":"xxh3:1","readOnly":false,"relativePath":"Z","metadata":{"mode":493,"uid":0,"gid":0,"size":5,"mtime":"1970-01-01T00:00:00Z","typeflag":0}},"#
            + #"{"digest":"xxh3:4306cff25f646ff","readOnly":false,"relativePath":"a/b\u003c\u0026\u003e.txt","metadata":{"mode":384,"uid":1000,"gid":1001,"size":0,"mtime":"2025-11-29T15:57:09.5Z","typeflag":0}},"#
            + #"{"digest":"xxh3:abc","readOnly":false,"relativePath":"ckpt1-x","metadata":{"mode":420,"uid":0,"gid":0,"size":3,"mtime":"2025-11-29T15:57:09.12Z","typeflag":0}},"#
            + #"{"digest":"xxh3:6b1e182d921cd510","readOnly":true,"relativePath":"ckpt1/state","metadata":{"mode":420,"uid":0,"gid":0,"size":12,"mtime":"2025-11-29T15:57:09.123456789Z","typeflag":0}},"#
            + #"{"digest":"xxh3:ff","readOnly":false,"relativePath":"é.txt","metadata":{"mode":420,"uid":0,"gid":0,"size":1,"mtime":"1969-12-31T23:59:59.999999999Z","typeflag":0}}"#
            + #"]}"#
        let encoded = SnapshotConfig.encode(Self.example)
        #expect(String(decoding: encoded, as: UTF8.self) == expected)
        #expect(encoded == Array(expected.utf8))
        // The same files in any order give the same bytes.
        #expect(SnapshotConfig.encode(Self.example.reversed()) == encoded)
        #expect(SnapshotConfig.encode([]) == Array(#"{"files":[]}"#.utf8))
    }

    @Test("the FORMAT.md example encodes to exactly its text")
    func formatExampleEncodes() {
        let text = #"{"files":[{"digest":"xxh3:6b1e182d921cd510","readOnly":true,"relativePath":"ckpt1/state","metadata":{"mode":420,"uid":0,"gid":0,"size":12,"mtime":"2025-11-29T15:57:09.123456789Z","typeflag":0}}]}"#
        #expect(SnapshotConfig.encode([Self.example[0]]) == Array(text.utf8))
    }

    @Test("control characters and quotes in paths are escaped as Go does")
    func escapesLikeGo() throws {
        let f = Self.file("q\"b\\s\u{1}\u{2028}\n", 1, size: 0, mtime: 0)
        let text = String(decoding: SnapshotConfig.encode([f]), as: UTF8.self)
        #expect(text.contains(#""relativePath":"q\"b\\s\u0001\u2028\n""#))
        #expect(try SnapshotConfig.decode(SnapshotConfig.encode([f])) == [f])
    }

    static let times: [(Int64, String)] = [
        (0, "1970-01-01T00:00:00Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (t2025 * 1_000_000_000 + 100_000_000, "2025-11-29T15:57:09.1Z"),
        (t2025 * 1_000_000_000 + 123_000, "2025-11-29T15:57:09.000123Z"),
        (951_782_400 * 1_000_000_000, "2000-02-29T00:00:00Z"),
        (-2_208_988_800 * 1_000_000_000, "1900-01-01T00:00:00Z"),
        (Int64.max, "2262-04-11T23:47:16.854775807Z"),
    ]

    @Test("RFC 3339 times format like Go's time.Time JSON and parse back", arguments: times)
    func rfc3339RoundTrips(_ nanos: Int64, _ text: String) throws {
        #expect(RFC3339.format(nanos: nanos) == text)
        #expect(try RFC3339.parse(text) == nanos)
    }

    @Test("RFC 3339 parsing accepts offsets and lowercase, rejects malformed times")
    func rfc3339Parsing() async throws {
        let base = Self.t2025 * 1_000_000_000
        #expect(try RFC3339.parse("2025-11-29T17:57:09+02:00") == base)
        #expect(try RFC3339.parse("2025-11-29T10:27:09.25-05:30") == base + 250_000_000)
        #expect(try RFC3339.parse("2025-11-29t15:57:09z") == base)
        for bad in ["", "2025-11-29", "2025-11-29 15:57:09Z", "2025-11-29T15:57:09", "2025-13-01T00:00:00Z",
                    "2025-11-29T24:00:00Z", "2025-11-29T15:57:09.Z", "2025-11-29T15:57:09+0200", "2025-11-29T15:57:09Zjunk",
                    "20x5-11-29T15:57:09Z"] {
            await expectError(.invalidArgument, "\(bad.debugDescription)") { try RFC3339.parse(bad) }
        }
    }

    @Test("decode(encode(files)) gives the files back, sorted")
    func decodeInvertsEncode() throws {
        let sorted = Self.example.sorted { $0.relativePath.utf8.lexicographicallyPrecedes($1.relativePath.utf8) }
        #expect(try SnapshotConfig.decode(SnapshotConfig.encode(Self.example)) == sorted)
    }

    @Test("decode accepts unknown fields, any member order and whitespace")
    func decodeIsLenient() throws {
        let text = """
        { "extra": [1, {"x": null}, "s"], "files": [
            { "metadata": {"typeflag": 0, "mtime": "2025-11-29T17:57:09.123456789+02:00", "size": 12,
                           "gid": 7, "uid": 6, "mode": 420, "future": {"a": [true]}},
              "relativePath": "ckpt1/state", "annotations": {"k": "v"}, "readOnly": true,
              "digest": "xxh3:6b1e182d921cd510" },
            {"digest":"xxh3:1","relativePath":"./other//file","metadata":{"size":0}}
          ], "version": 2 }
        """
        let files = try SnapshotConfig.decode(Array(text.utf8))
        #expect(files == [
            Self.file("ckpt1/state", 0x6b1e182d921cd510, readOnly: true, uid: 6, gid: 7, size: 12,
                      mtime: Self.t2025 * 1_000_000_000 + 123_456_789),
            Self.file("other/file", 1, size: 0, mtime: 0),
        ])
        #expect(try SnapshotConfig.decode(Array(#"{"files":null}"#.utf8)) == [])
        #expect(try SnapshotConfig.decode(Array(#"{"files":[]}"#.utf8)) == [])
    }

    static func config(path: String, digest: String = "xxh3:1", extra: String = "") -> String {
        #"{"files":[{"digest":"\#(digest)","relativePath":"\#(path)","metadata":{"size":1\#(extra)}}]}"#
    }

    @Test("decode refuses escaping paths and malformed entries", arguments: [
        config(path: "../x"),
        config(path: "/etc/passwd"),
        config(path: "a/../../x"),
        config(path: "a/.."),
        config(path: ""),
        config(path: "a\\u0000b"),
        config(path: "ok", digest: "xxh3:01"),
        config(path: "ok", digest: "sha256:1"),
        config(path: "ok", extra: #","typeflag":5"#),
        config(path: "ok", extra: #","mode":65536"#),
        #"{"files":[{"digest":"xxh3:1","relativePath":"ok","metadata":{"size":-1}}]}"#,
        #"{"files":[{"digest":"xxh3:1","relativePath":"ok","metadata":{}}]}"#,
        #"{"files":[{"digest":"xxh3:1","metadata":{"size":1}}]}"#,
        #"{"files":[{"digest":"xxh3:1","relativePath":"a/b","metadata":{"size":1}},{"digest":"xxh3:2","relativePath":"a//b","metadata":{"size":1}}]}"#,
        #"{"files":[{"digest":"xxh3:1","relativePath":"a","metadata":{"size":1}},{"digest":"xxh3:2","relativePath":"a/b","metadata":{"size":1}}]}"#,
        #"{"files":{}}"#,
        #"{"nofiles":[]}"#,
        #"[]"#,
        #"{"files":[]} trailing"#,
        String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
    ])
    func decodeRefuses(_ text: String) async {
        await expectError(.invalidArgument, "\(text)") { try SnapshotConfig.decode(Array(text.utf8)) }
    }

    @Test("decode names the second of two entries with one path; paths differing only in Unicode normalization are two")
    func decodeTwins() async throws {
        func entry(_ path: String, _ d: Int) -> String {
            #"{"digest":"xxh3:\#(d)","relativePath":"\#(path)","metadata":{"size":1}}"#
        }
        let twice = #"{"files":["# + [entry("b", 1), entry("a", 2), entry("c", 3), entry("./a", 4)].joined(separator: ",") + "]}"
        let e = await expectError(.invalidArgument) { try SnapshotConfig.decode(Array(twice.utf8)) }
        #expect(e?.message.contains("snapshot config file 3: path \"a\" appears twice") == true, "\(e?.message ?? "")")
        let two = #"{"files":["# + entry("\u{e9}", 1) + "," + entry("e\u{301}", 2) + "," + entry("e\u{301}/x", 3) + "]}"
        await expectError(.invalidArgument) { try SnapshotConfig.decode(Array(two.utf8)) }
        let files = try SnapshotConfig.decode(Array(("{\"files\":[" + entry("\u{e9}", 1) + "," + entry("e\u{301}", 2) + "]}").utf8))
        #expect(files.map(\.relativePath.utf8.count) == [2, 3])
    }

    @Test("a snapshot records the same config bytes encode gives for its files")
    func snapshotRecordsCanonicalConfig() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/b.txt", "b\n", mode: 0o600)
            try writeFile(fx.base + "/a/c.txt", "c\n", mtimeNanos: 1_700_000_000_100_000_000)
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "cfg", version: "1", baseDir: fx.base,
                                                                    files: [FileRequest("b.txt"), FileRequest("a/c.txt", readOnly: true)])).info
                #expect(info.config == SnapshotConfig.encode(info.files))
                #expect(info.files.map(\.relativePath) == ["a/c.txt", "b.txt"])
                #expect(try SnapshotConfig.decode(info.config) == info.files)
                let text = String(decoding: info.config, as: UTF8.self)
                #expect(text.contains(#""mtime":"2023-11-14T22:13:20.1Z""#))
                #expect(try await store.info(name: "cfg", version: "1").config == info.config)
            }
        }
    }

    /// Without `reportFiles`, the commit drops its list once the record
    /// holds it and writes the config from the record's own files: the
    /// same bytes either way.
    @Test("a snapshot that does not report its files records the same files and config")
    func snapshotWithoutReportedFiles() async throws {
        try await withFixture { fx in
            var requests: [FileRequest] = []
            for i in 0..<120 {
                // Short paths (inline strings) and long ones, read-only and not.
                let path = i % 3 == 0 ? "d\(i % 7)/a-long-name-of-file-\(i)-\u{e9}\u{301}.bin" : "f\(i)"
                try writeFile(fx.base + "/" + path, String(repeating: "x", count: i), mode: i % 2 == 0 ? 0o444 : 0o640)
                requests.append(FileRequest(path, readOnly: i % 2 == 0))
            }
            try await withStore(fx) { store in
                let listed = try await store.snapshot(SnapshotRequest(name: "rep", version: "1", baseDir: fx.base, files: requests))
                let counted = try await store.snapshot(SnapshotRequest(name: "rep", version: "2", baseDir: fx.base, files: requests,
                                                                       reportFiles: false))
                #expect(counted.info.files.isEmpty)
                #expect(counted.fileCount == 120 && listed.fileCount == 120)
                #expect(counted.totalSize == listed.info.totalSize && counted.totalSize == (0..<120).reduce(0, +))
                let recorded = try await store.info(name: "rep", version: "2")
                #expect(recorded.files == listed.info.files)
                #expect(recorded.config == SnapshotConfig.encode(recorded.files))
                #expect(recorded.config == (try await store.info(name: "rep", version: "1")).config)
            }
        }
    }

    @Test("a record's written files read back in order, again from the start, and a short record is refused")
    func writtenFilesReadBack() throws {
        let files = (0..<5).map { (i: Int) -> SnapshotFile in
            let path = i == 3 ? "a/much-longer-path-than-fifteen-bytes" : "p\(i)"
            let digest = Digest(UInt64(i) &* 77)
            return SnapshotFile(relativePath: path, digest: digest, readOnly: i % 2 == 0, mode: 0o600, uid: 1, gid: 2,
                                size: Int64(i), mtimeNanos: -Int64(i), typeflag: 0)
        }
        var w = ByteWriter()
        SnapshotRecord.writeFiles(to: &w, version: 1, created: 9, files: FileList(files))
        try w.bytes.withUnsafeBytes { bytes in
            let written = try SnapshotRecord.WrittenFiles(bytes, key: "k:v")
            #expect(written.count == 5)
            let list = written.list
            #expect(list.indices.map { list[$0] } == files)
            #expect(list[1] == files[1] && list[4] == files[4] && list[0] == files[0])
            try written.check()
            let short = try SnapshotRecord.WrittenFiles(UnsafeRawBufferPointer(rebasing: bytes.dropLast(3)), key: "k:v")
            _ = short.list.indices.map { short.list[$0] }
            #expect(throws: SnapshotterError.self) { try short.check() }
        }
    }
}
