import Testing
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote
@testable import SnapshotterCore

/// The snapshot record's two versions: 1 keeps every config, 2 keeps only a
/// config that is not the canonical encoding of the files. This release
/// reads both and writes 1.
@Suite("Snapshot record format")
struct RecordFormatTests {
    static let files = [
        SnapshotFile(relativePath: "a/b", digest: Digest(7), readOnly: true, mode: 0o444, uid: 1, gid: 2, size: 5, mtimeNanos: 9),
        SnapshotFile(relativePath: "c", digest: Digest(8), readOnly: false, mode: 0o644, uid: 0, gid: 0, size: 0, mtimeNanos: -3),
    ]

    static func decode(_ bytes: [UInt8]) throws -> SnapshotRecord {
        try bytes.withUnsafeBytes { try SnapshotRecord.decode($0, key: "r:1") }
    }

    /// A version 1 record as earlier releases wrote it.
    static func versionOne(config: [UInt8]) -> [UInt8] {
        var w = ByteWriter()
        w.u8(1)
        w.i64(42)
        w.u32(UInt32(files.count))
        for f in files {
            w.string(f.relativePath)
            w.u64(f.digest.value)
            w.u8(f.readOnly ? 1 : 0)
            w.u32(f.mode)
            w.u32(f.uid)
            w.u32(f.gid)
            w.i64(f.size)
            w.i64(f.mtimeNanos)
            w.u8(f.typeflag)
        }
        w.blob(config)
        return w.bytes
    }

    @Test("A version 1 record (written by earlier releases) still decodes, its config kept as it was")
    func versionOneDecodes() throws {
        let config = Array("{\"files\":[]} (as published)".utf8)
        let rec = try Self.decode(Self.versionOne(config: config))
        #expect(rec.created == 42)
        #expect(rec.files == Self.files)
        #expect(rec.givenConfig == config)
        #expect(rec.config == config)
    }

    @Test("A version 2 record without a config gives the canonical config, and is smaller by it")
    func canonicalConfigNotKept() throws {
        let bytes = try SnapshotRecord(created: 5, files: Self.files, givenConfig: nil).encode(version: 2)
        #expect(bytes.first == 2)
        let rec = try Self.decode(bytes)
        #expect(rec.files == Self.files)
        #expect(rec.givenConfig == nil)
        #expect(rec.config == SnapshotConfig.encode(Self.files))
        // Version 1 had the config's 4-byte length and bytes where this has a flag.
        let canonical = SnapshotConfig.encode(Self.files)
        #expect(bytes.count + canonical.count + 3 == Self.versionOne(config: canonical).count)
    }

    @Test("A version 2 record keeps a given config byte for byte")
    func givenConfigKept() throws {
        let config = Array("{\"files\": [], \"from\": \"elsewhere\"}".utf8)
        let rec = try Self.decode(SnapshotRecord(created: 5, files: Self.files, givenConfig: config).encode(version: 2))
        #expect(rec.givenConfig == config)
        #expect(rec.config == config)
    }

    @Test("This release writes version 1, with the canonical config, so the release before it reads every record")
    func writesVersionOne() throws {
        #expect(SnapshotRecord.writtenVersion == 1)
        let canonical = SnapshotConfig.encode(Self.files)
        let bytes = try SnapshotRecord(created: 42, files: Self.files, givenConfig: nil).encode()
        #expect(bytes == Self.versionOne(config: canonical), "byte for byte what earlier releases wrote and read")
        let given = Array("{\"files\": []}".utf8)
        #expect(try SnapshotRecord(created: 42, files: Self.files, givenConfig: given).encode() == Self.versionOne(config: given))
    }

    @Test("Written into a buffer of the computed size, a record is the same bytes; a short buffer is not overrun",
          arguments: [(UInt8(1), [UInt8]?.none), (UInt8(1), [UInt8]?.some([1, 2, 3])), (UInt8(2), [UInt8]?.none),
                      (UInt8(2), [UInt8]?.some([1, 2, 3]))])
    func bufferWriter(_ version: UInt8, _ given: [UInt8]?) throws {
        let expected = try SnapshotRecord(created: 5, files: Self.files, givenConfig: given).encode(version: version)
        let config = try SnapshotRecord.configStored(version: version, files: FileList(Self.files), givenConfig: given)
        let size = SnapshotRecord.encodedSize(version: version, files: FileList(Self.files), config: config)
        #expect(size == expected.count)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size + 8, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0xAA)
        var w = BufferWriter(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<size]))
        SnapshotRecord.write(to: &w, version: version, created: 5, files: FileList(Self.files), config: config)
        #expect(w.exact)
        #expect(Array(buffer[0..<size]) == expected)
        var short = BufferWriter(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(size - 1)]))
        buffer.initializeMemory(as: UInt8.self, repeating: 0xAA)
        SnapshotRecord.write(to: &short, version: version, created: 5, files: FileList(Self.files), config: config)
        #expect(!short.exact)
        #expect(buffer[(size - 1)...].allSatisfy { $0 == 0xAA }, "nothing written past the buffer")
    }

    @Test("Read without its config, a record of either version has its files, no config, and a cut config still fails")
    func withoutConfig() async throws {
        let given: [UInt8] = Array("{\"files\":[]}".utf8)
        for bytes in try [Self.versionOne(config: given), SnapshotRecord(created: 42, files: Self.files, givenConfig: given).encode(version: 2)] {
            let rec = try bytes.withUnsafeBytes { try SnapshotRecord.decode($0, key: "r:1", keepConfig: false) }
            #expect(rec.files == Self.files)
            #expect(rec.givenConfig == nil && rec.configDropped && rec.config.isEmpty)
            await expectError(.corrupt) {
                try Array(bytes.dropLast()).withUnsafeBytes { try SnapshotRecord.decode($0, key: "r:1", keepConfig: false) }
            }
        }
    }

    @Test("A record with an unknown version, a bad config flag, a cut config or bytes after it is corrupt")
    func malformed() async throws {
        var bytes = try SnapshotRecord(created: 5, files: Self.files, givenConfig: nil).encode(version: 2)
        bytes[bytes.count - 1] = 2
        var e = await expectError(.corrupt) { try Self.decode(bytes) }
        #expect(e?.message.contains("config flag 2") == true, "\(e?.message ?? "")")
        bytes[0] = 4
        e = await expectError(.corrupt) { try Self.decode(bytes) }
        #expect(e?.message.contains("format version 4 is not 1, 2 or 3") == true, "\(e?.message ?? "")")
        let given = try SnapshotRecord(created: 5, files: Self.files, givenConfig: [1, 2, 3]).encode(version: 2)
        await expectError(.corrupt) { try Self.decode(Array(given.dropLast())) }
        await expectError(.corrupt) { try Self.decode(given + [0]) }
        await expectError(.corrupt) { try Self.decode(Array(Self.versionOne(config: [9]).dropLast())) }
    }
}

@Suite("Files that are directories of other files")
struct FileIsDirectoryTests {
    @Test("A listed path that is also the directory of another is refused, naming both", arguments: [
        ["a", "a-x", "a/b"], ["a/b/c", "a-x", "a"], ["x/y/z", "x/y"], ["q/r", "p", "x/y/z/w", "x"], ["a!", "a", "a/b", "a.c"],
        ["\u{e9}", "e\u{301}/x", "\u{e9}/y"], ["e\u{301}/x", "\u{e9}/z", "e\u{301}"],
    ])
    func refused(_ paths: [String]) async {
        let sorted = paths.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let e = await expectError(.invalidArgument) { try SnapshotConfig.checkNoFileIsADirectory(sortedPaths: sorted) }
        #expect(e?.message.contains("is both a file and the directory of") == true, "\(e?.message ?? "")")
        let files = paths.map { SnapshotFile(relativePath: $0, digest: Digest(1), readOnly: false, mode: 0, uid: 0, gid: 0, size: 0, mtimeNanos: 0) }
        await expectError(.invalidArgument) { try SnapshotConfig.checkNoFileIsADirectory(files) }
    }

    @Test("Paths that only share a prefix, or a directory, are accepted")
    func accepted() throws {
        try SnapshotConfig.checkNoFileIsADirectory(sortedPaths: ["a-x", "a/b", "a/c", "ab", "b/a.d", "b/a/c"])
        try SnapshotConfig.checkNoFileIsADirectory(sortedPaths: [String]())
        // One name in Unicode's eyes, two on disk.
        try SnapshotConfig.checkNoFileIsADirectory(sortedPaths: ["e\u{301}/x", "\u{e9}"])
        try SnapshotConfig.checkNoFileIsADirectory(sortedPaths: ["e\u{301}", "\u{e9}/x"])
    }

    @Test("Two paths that differ only in Unicode normalization are two files (or directories), both snapshotted and restored")
    func unicodeTwins() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/\u{e9}", "composed\n")
            try writeFile(fx.base + "/e\u{301}", "decomposed\n")
            // And as directories: restored each into its own.
            try writeFile(fx.base + "/d\u{e9}/a", "in composed\n")
            try writeFile(fx.base + "/de\u{301}/b", "in decomposed\n")
            try await withStore(fx) { store in
                let files = [FileRequest("\u{e9}"), FileRequest("e\u{301}", readOnly: true),
                             FileRequest("d\u{e9}/a"), FileRequest("de\u{301}/b", readOnly: true)]
                let r = try await store.snapshot(SnapshotRequest(name: "u", version: "1", baseDir: fx.base, files: files))
                #expect(r.info.files.count == 4)
                _ = try await store.restore(RestoreRequest(name: "u", version: "1", outputDir: fx.output()))
                #expect(try readFile(fx.output() + "/\u{e9}") == Array("composed\n".utf8))
                #expect(try readFile(fx.output() + "/e\u{301}") == Array("decomposed\n".utf8))
                #expect(try readFile(fx.output() + "/d\u{e9}/a") == Array("in composed\n".utf8))
                #expect(try readFile(fx.output() + "/de\u{301}/b") == Array("in decomposed\n".utf8))
                #expect(try Sys.lstatIfExists(fx.output() + "/d\u{e9}/b") == nil, "not put in the other directory")
            }
        }
    }

    @Test("A snapshot listing a file and a path below it is refused before anything is stored")
    func snapshotRefused() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/a", "a\n")
            try await withStore(fx) { store in
                let e = await expectError(.invalidArgument) {
                    try await store.snapshot(SnapshotRequest(name: "d", version: "1", baseDir: fx.base,
                                                             files: [FileRequest("a/b"), FileRequest("a")]))
                }
                #expect(e?.message.contains("\"a\" is both a file and the directory of \"a/b\"") == true, "\(e?.message ?? "")")
            }
        }
    }
}

@Suite("Path normal form")
struct PathNormalFormTests {
    @Test("The one-pass check agrees with normalize on every path of up to 7 of 'a', '.', '/' and NUL, and on long ones")
    func fastPathAgrees() {
        let alphabet: [String] = ["a", ".", "/", "\0"]
        var paths: [String] = [""]
        var frontier: [String] = [""]
        for _ in 0..<7 {
            frontier = frontier.flatMap { p in alphabet.map { p + $0 } }
            paths += frontier
        }
        paths += [String(repeating: "a", count: 255), String(repeating: "a", count: 256), "d/" + String(repeating: "b", count: 256),
                  String(repeating: "abc/", count: 1024), String(repeating: "abc/", count: 1023) + "abc", String(repeating: "abc/", count: 1024) + "abc", "..a/b..", "a/.../b"]
        var normal = 0
        for p in paths {
            let expected = (try? PathGuard.normalize(p)) == p
            #expect(PathGuard.isNormal(p) == expected, "\(p.debugDescription)")
            if expected { normal += 1 }
        }
        #expect(normal > 100, "the set holds normal paths too")
    }

    @Test("Two paths are ordered by their UTF-8 bytes, short and long, ASCII or not, one the prefix of the other")
    func byteOrder() {
        let long = String(repeating: "d0001/", count: 8)
        let paths = ["", "a", "a/b", "a/b0", "a0", "aa", "b", "Z", "é", "e\u{301}", "ö/x", "😀", "a\u{7f}", "\u{80}",
                     long, long + "f", long + "é", String(long.dropLast()), long.uppercased(), "d0001/f0000001", "d0001/f0000002"]
        var before = 0
        for a in paths {
            for b in paths {
                let expected = Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
                #expect(PathGuard.precedes(a, b) == expected, "\(a.debugDescription) < \(b.debugDescription)")
                #expect(PathGuard.precedes(a[...], b[...]) == expected, "as substrings")
                if expected { before += 1 }
            }
        }
        #expect(before == paths.count * (paths.count - 1) / 2, "a strict total order of distinct paths")
    }
}

@Suite("Config numbers as bytes")
struct ConfigNumberTests {
    /// The String-based formatting the byte writer replaced, kept as the
    /// oracle (its output is what configs have always held).
    static func oracle(nanos: Int64) -> String {
        var secs = nanos / 1_000_000_000
        var frac = nanos % 1_000_000_000
        if frac < 0 { frac += 1_000_000_000; secs -= 1 }
        var days = secs / 86_400
        var rem = secs % 86_400
        if rem < 0 { rem += 86_400; days -= 1 }
        let (y, m, d) = RFC3339.civil(fromDays: days)
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
        }
        var out = "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(rem / 3600, 2)):\(pad(rem / 60 % 60, 2)):\(pad(rem % 60, 2))"
        if frac != 0 {
            var f = pad(frac, 9)
            while f.hasSuffix("0") { f.removeLast() }
            out += "." + f
        }
        return out + "Z"
    }

    @Test("Times are written as the String-based formatting wrote them, at the edges and at random")
    func timesAgree() {
        var values: [Int64] = [0, 1, -1, 999_999_999, 1_000_000_000, -1_000_000_000, .min, .max, .min + 1, .max - 1,
                               1_700_000_000_123_456_789, 1_700_000_000_100_000_000, -9_000_000_000_000_000_001,
                               9_000_000_000_000_000_001, -86_400_000_000_001]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 { values.append(Int64.random(in: .min ... .max, using: &rng)) }
        for _ in 0..<20_000 { values.append(Int64.random(in: -4_000_000_000_000_000_000...4_000_000_000_000_000_000, using: &rng) / 1000 * 1000) }
        for v in values { #expect(RFC3339.format(nanos: v) == Self.oracle(nanos: v), "\(v)") }
    }

    @Test("Decimal digits are String's, padded", arguments: [Int64.min, .max, 0, 7, -7, 10, -10, 99, 100, 1_000_000_007])
    func decimals(_ v: Int64) {
        for width in [0, 1, 2, 4, 25] {
            var out: [UInt8] = []
            DecimalText.append(v, width: width, to: &out)
            let s = String(v)
            #expect(String(decoding: out, as: UTF8.self) == String(repeating: "0", count: max(0, width - s.count)) + s)
        }
    }
}

@Suite("Config size counted without writing")
struct ConfigSizeTests {
    static func randomFile(_ rng: inout some RandomNumberGenerator, _ i: Int) -> SnapshotFile {
        let names = ["a", "d0001/f0000001", "x<y>&z", "quote\"back\\slash", "tab\there", "nl\nx", "\u{1}", "é/ö", "😀",
                     "\u{2028}line", "\u{7f}del", String(repeating: "long/", count: 40) + "end"]
        let path = names[Int.random(in: 0..<names.count, using: &rng)] + "-\(i)"
        let nanos: [Int64] = [0, 1, -1, .max, .min, 1_000_000_000, -1_000_000_000, 1_764_431_829_123_456_789, 120_000_000]
        let sizes: [Int64] = [0, 9, 10, 99, 100, .max, 4096, Int64.random(in: 0...Int64.max, using: &rng)]
        return SnapshotFile(relativePath: path, digest: Digest(rng.next() >> UInt64.random(in: 0..<64, using: &rng)),
                            readOnly: Bool.random(using: &rng), mode: UInt32.random(in: 0...0o777, using: &rng),
                            uid: UInt32.random(in: 0...UInt32.max, using: &rng) >> UInt32.random(in: 0..<32, using: &rng),
                            gid: UInt32.random(in: 0...10, using: &rng), size: sizes.randomElement(using: &rng) ?? 0,
                            mtimeNanos: Bool.random(using: &rng) ? nanos.randomElement(using: &rng) ?? 0 : Int64.random(in: .min ... .max, using: &rng),
                            typeflag: UInt8.random(in: 0...255, using: &rng))
    }

    @Test("The counted size is the written size, for odd paths, numbers and times; written in pieces it is the same bytes",
          arguments: [0, 1, 2, 7, 500, 3000])
    func countedIsWritten(_ count: Int) {
        var rng = SystemRandomNumberGenerator()
        let files = (0..<count).map { Self.randomFile(&rng, $0) }
            .sorted { PathGuard.precedes($0.relativePath, $1.relativePath) }
        let whole = SnapshotConfig.encode(sorted: FileList(files))
        #expect(SnapshotConfig.encodedSize(sorted: FileList(files)) == whole.count)
        var pieces: [[UInt8]] = []
        SnapshotConfig.encode(sorted: FileList(files)) { pieces.append(Array($0)) }
        #expect(pieces.joined().elementsEqual(whole))
        if whole.count > 3 * SnapshotConfig.pieceBytes { #expect(pieces.count >= 3, "written in pieces, not at once") }
        #expect(whole == SnapshotConfig.encode(files), "the same bytes as the one-shot encoder")
    }

    @Test("An entry written in one piece is the entry written field by field")
    func onePieceEntry() {
        var rng = SystemRandomNumberGenerator()
        var plain = 0
        for i in 0..<5000 {
            var f = Self.randomFile(&rng, i)
            if i % 3 == 0 { f.relativePath = "d\(i % 97)/f\(i)" }
            var fast = JSONWriter(), reference = JSONWriter()
            SnapshotConfig.appendEntry(f, to: &fast)
            SnapshotConfig.appendEntryEscaped(f, to: &reference)
            #expect(fast.bytes == reference.bytes, "\(f.relativePath.debugDescription)")
            if JSONWriter.isPlain(f.relativePath) { plain += 1 }
        }
        #expect(plain > 1000, "plain paths took the one-piece writer")
    }

    @Test("Decimal and time lengths are the written lengths")
    func lengths() {
        var values: [Int64] = [0, 1, -1, 9, 10, -9, -10, .max, .min, .max - 1, .min + 1]
        var power: Int64 = 1
        for _ in 0..<18 { power *= 10; values += [power, power - 1, -power, 1 - power] }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 { values.append(Int64(bitPattern: rng.next()) >> Int64.random(in: 0..<64)) }
        for v in values {
            var out: [UInt8] = []
            DecimalText.append(v, to: &out)
            #expect(DecimalText.length(v) == out.count, "\(v)")
            #expect(RFC3339.length(nanos: v) == RFC3339.format(nanos: v).utf8.count, "\(v)")
        }
    }
}
