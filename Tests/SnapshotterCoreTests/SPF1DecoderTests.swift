import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// Builds SPF1 streams byte by byte, valid or not.
struct SPF1Stream {
    var bytes: [UInt8] = []

    init(magic: String = "SPF1", size: UInt64, count: UInt64) {
        bytes = Array(magic.utf8)
        u64(size)
        u64(count)
    }

    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }

    /// An extent header and `dataCount` bytes of data (default: `length`).
    mutating func extent(_ offset: UInt64, _ length: UInt64, dataCount: Int? = nil) {
        u64(offset)
        u64(length)
        bytes.append(contentsOf: patternBytes(dataCount ?? Int(length), seed: offset))
    }

    func with(_ edit: (inout SPF1Stream) -> Void) -> SPF1Stream {
        var copy = self
        edit(&copy)
        return copy
    }
}

/// A hostile stream the decoder must refuse.
struct HostileCase: Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: [UInt8]
    /// Refusable from the 20-byte header alone, before the output is touched.
    var refusedAtHeader = false
    var testDescription: String { name }

    static let all: [HostileCase] = {
        let valid = SPF1Stream(size: 100, count: 2).with { $0.extent(0, 10); $0.extent(50, 10) }
        var header = SPF1Stream(size: 100, count: 0).bytes
        header.removeLast(8)
        return [
            HostileCase(name: "bad magic", bytes: SPF1Stream(magic: "SPF2", size: 0, count: 0).bytes, refusedAtHeader: true),
            HostileCase(name: "lowercase magic", bytes: SPF1Stream(magic: "spf1", size: 0, count: 0).bytes, refusedAtHeader: true),
            HostileCase(name: "empty stream", bytes: [], refusedAtHeader: true),
            HostileCase(name: "truncated header", bytes: header, refusedAtHeader: true),
            HostileCase(name: "truncated extent data",
                        bytes: SPF1Stream(size: 100, count: 1).with { $0.extent(0, 10, dataCount: 5) }.bytes),
            HostileCase(name: "truncated extent header",
                        bytes: SPF1Stream(size: 100, count: 2).with { $0.extent(0, 10); $0.u64(50) }.bytes),
            HostileCase(name: "overlapping extents",
                        bytes: SPF1Stream(size: 100, count: 2).with { $0.extent(0, 10); $0.extent(5, 10) }.bytes),
            HostileCase(name: "repeated extent",
                        bytes: SPF1Stream(size: 100, count: 2).with { $0.extent(20, 10); $0.extent(20, 10) }.bytes),
            HostileCase(name: "out-of-order extents",
                        bytes: SPF1Stream(size: 100, count: 2).with { $0.extent(50, 10); $0.extent(0, 10) }.bytes),
            HostileCase(name: "extent past size",
                        bytes: SPF1Stream(size: 100, count: 1).with { $0.extent(95, 10) }.bytes),
            HostileCase(name: "extent starting past size",
                        bytes: SPF1Stream(size: 100, count: 1).with { $0.extent(200, 1) }.bytes),
            HostileCase(name: "extent whose end overflows",
                        bytes: SPF1Stream(size: 100, count: 1).with { $0.u64(UInt64.max - 5); $0.u64(10); $0.bytes += [UInt8](repeating: 1, count: 10) }.bytes),
            HostileCase(name: "zero-length extent",
                        bytes: SPF1Stream(size: 100, count: 1).with { $0.extent(0, 0) }.bytes),
            HostileCase(name: "trailing data", bytes: valid.bytes + [0]),
            HostileCase(name: "trailing data after an empty file", bytes: SPF1Stream(size: 0, count: 0).bytes + [0, 0, 0, 0]),
            HostileCase(name: "count 2^60 in a tiny stream", bytes: SPF1Stream(size: 1 << 40, count: 1 << 60).bytes, refusedAtHeader: true),
            HostileCase(name: "count UInt64.max", bytes: SPF1Stream(size: 100, count: UInt64.max).with { $0.extent(0, 10) }.bytes,
                        refusedAtHeader: true),
            HostileCase(name: "count one more than the extents present", bytes: valid.with { $0.bytes[19] = 3 }.bytes),
            HostileCase(name: "extent longer than the stream (2^40 bytes claimed)",
                        bytes: SPF1Stream(size: 1 << 41, count: 1).with { $0.u64(0); $0.u64(1 << 40); $0.bytes += [1, 2, 3] }.bytes),
            HostileCase(name: "size beyond Int64", bytes: SPF1Stream(size: UInt64.max, count: 0).bytes, refusedAtHeader: true),
        ]
    }()
}

/// Writes `bytes` to a file and runs the decoder over it.
func decodeStream(_ bytes: [UInt8], in dir: String, toFile: Bool) throws -> SPF1.DecodeResult {
    let src = dir + "/stream", dst = dir + "/decoded"
    try writeFile(src, bytes)
    let inFD = try posix("open") { open(src, O_RDONLY | O_CLOEXEC) }
    defer { close(inFD) }
    var outFD: Int32? = nil
    if toFile { outFD = try posix("open") { open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) } }
    defer { if let outFD { close(outFD) } }
    return try withIOBuffer { try SPF1.decode(from: inFD, streamLength: Int64(bytes.count), to: outFD, name: src, buffer: $0) { _ in } }
}

@Suite("SPF1 decoder against hostile input")
struct SPF1DecoderTests {
    @Test("the stream builder makes streams the decoder accepts")
    func builderMakesValidStreams() async throws {
        try await withTempDir { dir in
            let valid = SPF1Stream(size: 100, count: 2).with { $0.extent(0, 10); $0.extent(50, 10) }
            let r = try decodeStream(valid.bytes, in: dir, toFile: true)
            #expect(r.logicalSize == 100)
            #expect(r.digest == XXH3Hasher.hash(valid.bytes))
            let out = try readFile(dir + "/decoded")
            #expect(out.count == 100)
            #expect(Array(out[0..<10]) == patternBytes(10, seed: 0))
            #expect(Array(out[50..<60]) == patternBytes(10, seed: 50))
            #expect(out[10..<50].allSatisfy { $0 == 0 } && out[60...].allSatisfy { $0 == 0 })
            // Extents may touch.
            let touching = SPF1Stream(size: 20, count: 2).with { $0.extent(0, 10); $0.extent(10, 10) }
            #expect(try decodeStream(touching.bytes, in: dir, toFile: false).logicalSize == 20)
        }
    }

    // A hostile count is refused from the length, not by trying: trying
    // would not end within the time limit (a hang detector, no speed bound).
    @Test("the decoder refuses hostile streams with .corrupt", .timeLimit(.minutes(5)), arguments: HostileCase.all)
    func decoderRefuses(_ c: HostileCase) async throws {
        try await withTempDir { dir in
            await expectError(.corrupt, "writing") { try decodeStream(c.bytes, in: dir, toFile: true) }
            if c.refusedAtHeader {
                let decoded = try statOf(dir + "/decoded")
                #expect(decoded.st_size == 0, "the output was not touched")
            }
            await expectError(.corrupt, "checking only") { try decodeStream(c.bytes, in: dir, toFile: false) }
        }
    }

    /// Feeds `bytes` to the push decoder in pieces of `piece` bytes (the
    /// way a download delivers them), with or without the stream length.
    static func feed(_ bytes: [UInt8], piece: Int, knownLength: Bool, into dst: Int32?) throws -> SPF1.DecodeResult {
        var decoder = SPF1.Decoder(name: "stream", to: dst, streamLength: knownLength ? Int64(bytes.count) : nil)
        try bytes.withUnsafeBytes { raw in
            var at = 0
            while at < raw.count {
                let n = min(piece, raw.count - at)
                try decoder.feed(UnsafeRawBufferPointer(rebasing: raw[at..<at + n]))
                at += n
            }
        }
        return try decoder.finish()
    }

    @Test("the push decoder gives the file decoder's digest and bytes whatever the pieces")
    func pushDecoderMatchesFileDecoder() async throws {
        try await withTempDir { dir in
            let streams = [
                SPF1Stream(size: 100, count: 2).with { $0.extent(0, 10); $0.extent(50, 10) },
                SPF1Stream(size: 0, count: 0),
                SPF1Stream(size: 1 << 20, count: 0),
                SPF1Stream(size: 300_000, count: 3).with { $0.extent(0, 70_000); $0.extent(70_000, 1); $0.extent(100_000, 200_000) },
            ]
            for stream in streams {
                let expected = try decodeStream(stream.bytes, in: dir, toFile: true)
                let reference = try readFile(dir + "/decoded")
                for piece in [1, 3, 7, 16, 20, 4096, 65_536, stream.bytes.count + 1] {
                    for known in [true, false] {
                        let path = dir + "/pushed"
                        let fd = try posix("open") { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
                        let r = try Self.feed(stream.bytes, piece: piece, knownLength: known, into: fd)
                        close(fd)
                        #expect(r.digest == expected.digest && r.logicalSize == expected.logicalSize, "pieces of \(piece)")
                        #expect(try readFile(path) == reference, "pieces of \(piece)")
                    }
                }
            }
        }
    }

    @Test("the push decoder refuses hostile streams in any pieces, with or without the length", arguments: HostileCase.all)
    func pushDecoderRefuses(_ c: HostileCase) async throws {
        for piece in [1, 5, 16, 1 << 20] {
            for known in [true, false] {
                await expectError(.corrupt, "pieces of \(piece), length known: \(known)") {
                    try Self.feed(c.bytes, piece: piece, knownLength: known, into: nil)
                }
            }
        }
    }

    @Test("a restore of hostile content fails with .corrupt and writes nothing", arguments: HostileCase.all)
    func restoreOfHostileContentLeavesNothing(_ c: HostileCase) async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/victim.bin", patternBytes(5000, seed: 7))
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "hostile", version: "v1", baseDir: fx.base,
                                                                    files: [FileRequest("victim.bin")])).info
                let content = fx.contentDir + "/" + info.files[0].digest.hex
                try posix("unlink") { unlink(content) }
                try writeFile(content, c.bytes, mode: 0o444)

                let out = fx.output()
                await expectError(.corrupt) {
                    try await store.restore(RestoreRequest(name: "hostile", version: "v1", outputDir: out))
                }
                #expect(try allFiles(under: out) == [], "no file, final or temporary, is left in the output")
                let problems = try await store.verify().problems
                #expect(problems.map(\.kind) == [.corruptContent])
                #expect(problems.first?.digest == info.files[0].digest)
            }
        }
    }
}
