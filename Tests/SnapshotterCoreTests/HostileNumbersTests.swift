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

/// Numbers from outside (configs, records, token services, the daemon, local
/// files) that do not fit are errors naming the field, or are clamped; they
/// never trap the host process.
@Suite("Hostile numbers")
struct HostileNumbersTests {
    static func entry(_ path: String, size: String = "1", mtime: String? = nil, extra: String = "") -> String {
        let m = mtime.map { #","mtime":"\#($0)""# } ?? ""
        return #"{"digest":"xxh3:1","relativePath":"\#(path)","metadata":{"size":\#(size)\#(m)\#(extra)}}"#
    }

    static func config(_ entries: String...) -> [UInt8] {
        Array(#"{"files":[\#(entries.joined(separator: ","))]}"#.utf8)
    }

    @Test("A config mtime past Int64 nanoseconds (2262-04-11T23:47:16.999999999Z) is an error naming mtime")
    func mtimePastRange() async throws {
        let e = await expectError(.invalidArgument) {
            try SnapshotConfig.decode(Self.config(Self.entry("a", mtime: "2262-04-11T23:47:16.999999999Z")))
        }
        #expect(e?.message.contains("mtime") == true, "\(e?.message ?? "")")
        #expect(e?.message.contains("out of range") == true, "\(e?.message ?? "")")
        // The last representable instant and the first one both parse.
        #expect(try RFC3339.parse("2262-04-11T23:47:16.854775807Z") == Int64.max)
        #expect(try RFC3339.parse(RFC3339.format(nanos: .min)) == Int64.min)
        await expectError(.invalidArgument) { try RFC3339.parse("2262-04-11T23:47:16.854775808Z") }
        await expectError(.invalidArgument) { try RFC3339.parse("1677-09-21T00:12:43.145224191Z") }
    }

    @Test("Two files of size Int64.max in a config: an error naming size, not an overflow trap")
    func sizesOverflowTheTotal() async throws {
        let max = String(Int64.max)
        let e = await expectError(.invalidArgument) {
            try SnapshotConfig.decode(Self.config(Self.entry("a", size: max), Self.entry("b", size: max)))
        }
        #expect(e?.message.contains("size") == true, "\(e?.message ?? "")")
        // One such file alone is a valid config.
        #expect(try SnapshotConfig.decode(Self.config(Self.entry("a", size: max))).first?.size == Int64.max)
    }

    @Test("Config integers that are not integers in range are errors naming the field", arguments: [
        ("uid", #","uid":1e20"#), ("uid", #","uid":4294967296"#), ("gid", #","gid":-1"#),
        ("mode", #","mode":1.5"#), ("typeflag", #","typeflag":"0""#),
    ])
    func integerFields(field: String, extra: String) async {
        let e = await expectError(.invalidArgument) { try SnapshotConfig.decode(Self.config(Self.entry("a", extra: extra))) }
        #expect(e?.message.contains(field) == true, "\(e?.message ?? "")")
    }

    @Test("size 2^63 and a huge exponent are errors naming size")
    func sizeNotAnInt64() async {
        for size in ["9223372036854775808", "1e300", "1.5"] {
            let e = await expectError(.invalidArgument) { try SnapshotConfig.decode(Self.config(Self.entry("a", size: size))) }
            #expect(e?.message.contains("size") == true, "\(e?.message ?? "")")
        }
    }

    @Test("A store record whose file sizes overflow the total is corrupt, naming the size")
    func recordSizesOverflow() async throws {
        let f = SnapshotFile(relativePath: "a", digest: Digest(1), readOnly: false, mode: 0o644, uid: 0, gid: 0,
                             size: .max, mtimeNanos: 0)
        var g = f
        g.relativePath = "b"
        let bytes = try SnapshotRecord(created: 0, files: [f, g], givenConfig: []).encode()
        let e = await expectError(.corrupt) { try bytes.withUnsafeBytes { try SnapshotRecord.decode($0, key: "x:1") } }
        #expect(e?.message.contains("size") == true, "\(e?.message ?? "")")
        var negative = f
        negative.size = -1
        let one = try SnapshotRecord(created: 0, files: [negative], givenConfig: []).encode()
        await expectError(.corrupt) { try one.withUnsafeBytes { try SnapshotRecord.decode($0, key: "x:1") } }
        let content = ContentRecord(encodedSize: -5, logicalSize: 1, created: 0, hasLink: false).encode()
        await expectError(.corrupt) { try content.withUnsafeBytes { try ContentRecord.decode($0, digest: Digest(1)) } }
    }

    @Test("Token lifetimes: expires_in 1e11 (either spelling) is clamped to a day; absent is 60 s; tiny is 10 s")
    func tokenLifetime() {
        #expect(DistributionRegistry.tokenLifetime(.number("100000000000")) == 86_400)
        #expect(DistributionRegistry.tokenLifetime(.number("1e11")) == 86_400)
        #expect(DistributionRegistry.tokenLifetime(.number("1e400")) == 86_400)
        #expect(DistributionRegistry.tokenLifetime(.number("300")) == 300)
        #expect(DistributionRegistry.tokenLifetime(.number("-7")) == 10)
        #expect(DistributionRegistry.tokenLifetime(.string("300")) == 60)
        #expect(DistributionRegistry.tokenLifetime(nil) == 60)
    }

    @Test("A Dragonfly piece length of 2^63 or more is a transport error naming it")
    func pieceLength() async throws {
        #expect(try DaemonNumbers.pieceLength(4 << 20, what: "d") == 4 << 20)
        #expect(try DaemonNumbers.pieceLength(UInt64(Int64.max), what: "d") == Int64.max)
        for raw in [UInt64(1) << 63, UInt64.max] {
            let e = await expectError(.transport) { try DaemonNumbers.pieceLength(raw, what: "download") }
            #expect(e?.message.contains("piece length") == true)
        }
        // Huge byte counts only saturate the progress counters.
        let seen = Locked<[ProgressEvent]>([])
        let reporter = ProgressReporter(handler: { e in seen.withLock { $0.append(e) }; return true },
                                        cancel: CancellationFlag(), minIntervalNanos: 0)
        reporter.begin(.fetching, filesTotal: 1, bytesTotal: .max)
        reporter.begin(.exporting, filesTotal: 1, bytesTotal: .max)
        reporter.addBytes(.max)
        reporter.addBytes(.max)
        reporter.finish()
        #expect(seen.withLock { $0.last?.bytesDone } == Int64.max)
    }

    @Test("Sums and shares saturate or fail; they never trap")
    func checkedHelpers() async throws {
        #expect(try [1, 2, 3].checkedTotal("size") { Int64($0) } == 6)
        let e = await expectError(.corrupt) { try [Int64.max, 1].checkedTotal("size", code: .corrupt) { $0 } }
        #expect(e?.message.contains("size") == true)
        #expect([Int64.max, .max].saturatingTotal { $0 } == .max)
        #expect(Int64.max.share(3, of: 4) == 6_917_529_027_641_081_855)  // floor((2^63 - 1) * 3 / 4)
        #expect(Int64(100).share(5, of: 0) == 0)
        #expect(Int64.nanos(seconds: 1e300) == .max)
        #expect(Int64.nanos(seconds: .nan) == 0)
        #expect(Int.clamped(.infinity, 1, 10) == 10)
        #expect(Int.clamped(-.infinity, 1, 10) == 1)
    }

    /// Sets a file's times from seconds and nanoseconds directly.
    static func setTimes(_ path: String, sec: Int, nsec: Int) throws {
        let t = timespec(tv_sec: sec, tv_nsec: nsec)
        try posix("utimensat \(path)") { utimensat(AT_FDCWD, path, [t, t], AT_SYMLINK_NOFOLLOW) }
    }

    @Test("Local files of size 2^62 and 2^62: the snapshot is an error naming size (tmpfs holds such sparse files)")
    func localSizesOverflow() async throws {
        guard FileManager.default.fileExists(atPath: "/dev/shm") else { return }
        try await withTempDir(in: "/dev/shm") { dir in
            let base = dir + "/base"
            for name in ["a", "b"] {
                do {
                    try writeSparseFile(base + "/" + name, size: 1 << 62, data: [])
                } catch {
                    return  // this file system does not hold files that large
                }
            }
            var options = StoreOptions()
            options.gc.intervalSeconds = 0
            let store = try Snapshotter(root: dir + "/store", options: options)
            defer { Task { await store.close() } }
            let e = await expectError(.invalidArgument) {
                try await store.snapshot(SnapshotRequest(name: "big", version: "1", baseDir: base,
                                                         files: [FileRequest("a"), FileRequest("b")]))
            }
            #expect(e?.message.contains("size") == true, "\(e?.message ?? "")")
            await store.close()
        }
    }

    @Test("A local file whose mtime is past 2262 is snapshotted with the last representable time")
    func localMtimePastRange() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/late", "x")
            try Self.setTimes(fx.base + "/late", sec: 10_413_792_000, nsec: 0)  // 2300-01-01
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "late", version: "1", baseDir: fx.base,
                                                                    files: [FileRequest("late")])).info
                #expect(info.files.first?.mtimeNanos == Int64.max)
                #expect(try SnapshotConfig.decode(info.config) == info.files)
            }
        }
    }
}
