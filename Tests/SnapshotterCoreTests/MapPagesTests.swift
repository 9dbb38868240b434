import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata

/// The metadata map's pages a transaction reads count in the process's
/// resident memory; the store gives them back (issue 17).
@Suite("Metadata map pages")
struct MapPagesTests {
    /// Resident KiB of this process's mappings of the store's data.mdb.
    static func mapResidentKiB(_ root: String) throws -> Int {
        let smaps = String(decoding: try Sys.readProcFile("/proc/self/smaps"), as: UTF8.self)
        let real = try Sys.realpath(root + "/metadata") + "/data.mdb"
        var inMap = false
        var total = 0
        for line in smaps.split(separator: "\n") {
            if let first = line.first, first.isHexDigit, line.contains("-") {
                inMap = line.hasSuffix(" " + real)
            } else if inMap, line.hasPrefix("Rss:") {
                total += Int(line.split(separator: " ")[1]) ?? 0
            }
        }
        return total
    }

    /// A record of `count` files, put in the store; its encoding's size.
    static func putRecord(_ store: Snapshotter, _ key: SnapshotKey, count: Int) throws -> ([SnapshotFile], Int) {
        let files = (0..<count).map {
            SnapshotFile(relativePath: "dir/file-\($0)", digest: Digest(UInt64($0) + 1), readOnly: false,
                         mode: 0o644, uid: 0, gid: 0, size: 1, mtimeNanos: 0)
        }
        let record = try SnapshotRecord(created: 1, files: files, givenConfig: nil).encode()
        try store.meta.write { try $0.putSnapshot(key, encodedRecord: record, accessed: 1) }
        store.meta.releaseMapPages()
        return (files, record.count)
    }

    /// Reads every byte of a record in the map, as it is, without decoding.
    static func touchRecord(_ store: Snapshotter, _ key: SnapshotKey) throws -> Int {
        try store.meta.env.read { txn in
            try txn.withValue(store.meta.snapshots, key.bytes) { $0.reduce(0) { $0 &+ Int($1) } } ?? 0
        }
    }

    /// `body` on a store holding the record of `count` files as `m:1`.
    static func withRecord(count: Int, _ body: (Fixture, Snapshotter, SnapshotKey, [SnapshotFile], Int) throws -> Void) async throws {
        try await withFixture { fx in
            try await withStore(fx) { store in
                let key = SnapshotKey(name: "m", version: "1")
                let (files, size) = try putRecord(store, key, count: count)
                try body(fx, store, key, files, size)
            }
        }
    }

    @Test("Pages read from the metadata map are given back, and read again unchanged")
    func released() async throws {
        try await Self.withRecord(count: 20_000) { fx, store, key, files, size in
            let before = try Self.mapResidentKiB(fx.root)
            _ = try Self.touchRecord(store, key)
            let touched = try Self.mapResidentKiB(fx.root)
            let recordKiB = size / 1024
            #expect(touched - before >= recordKiB / 2, "reading the record made its pages resident: \(before) -> \(touched) KiB")
            store.meta.releaseMapPages()
            let after = try Self.mapResidentKiB(fx.root)
            #expect(after <= touched - recordKiB / 2, "given back: \(touched) -> \(after) KiB")
            let again = try store.meta.read { try $0.snapshot(key) }
            #expect(again?.files == files)
        }
    }

    /// At many files the decoded list and the record's pages in the map
    /// were resident together.
    @Test("Decoding a snapshot record gives its pages in the map back as it goes")
    func releasedWhileDecoding() async throws {
        // Files past the first release (4 MiB), and a config after them.
        try await Self.withRecord(count: 120_000) { fx, store, key, files, size in
            let config = SnapshotConfig.encode(sorted: FileList(files))
            let filesKiB = (size - config.count) / 1024
            for keep in [false, true] {
                store.meta.releaseMapPages()
                let before = try Self.mapResidentKiB(fx.root)
                var peak = 0
                let read = try store.meta.read { txn in
                    let r = try txn.snapshot(key, config: keep)
                    peak = try Self.mapResidentKiB(fx.root)
                    return r
                }
                #expect(read?.files == files)
                #expect(keep == false || read?.config == config)
                #expect(peak - before < filesKiB / 2, "config \(keep): \(before) -> \(peak) KiB, the files take \(filesKiB) KiB")
            }
            // A raw read of the same record leaves it resident: the measure sees it.
            store.meta.releaseMapPages()
            let before = try Self.mapResidentKiB(fx.root)
            _ = try Self.touchRecord(store, key)
            #expect(try Self.mapResidentKiB(fx.root) - before >= size / 1024 / 2)
        }
    }

    @Test("Only the map's pages are given back: other memory is never touched")
    func onlyMapPages() async throws {
        try await withFixture { fx in
            try await withStore(fx) { store in
                let pattern = (0..<(64 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
                let heap = UnsafeMutableRawBufferPointer.allocate(byteCount: pattern.count, alignment: 4096)
                defer { heap.deallocate() }
                heap.copyBytes(from: pattern)
                store.meta.env.releaseMapPages(of: UnsafeRawBufferPointer(heap))
                let intact = heap.elementsEqual(pattern)
                #expect(intact, "MADV_DONTNEED would have zeroed these pages")
            }
        }
    }

    @Test("A snapshot and a restore end with no pages of the map resident")
    func operationsGiveBack() async throws {
        try await withFixture { fx in
            var requests: [FileRequest] = []
            for i in 0..<300 {
                try writeFile(fx.base + "/f\(i)", "file \(i)\n")
                requests.append(FileRequest("f\(i)", readOnly: i % 2 == 0))
            }
            try await withStore(fx) { store in
                _ = try await store.snapshot(SnapshotRequest(name: "s", version: "1", baseDir: fx.base, files: requests))
                #expect(try Self.mapResidentKiB(fx.root) == 0)
                _ = try store.meta.read { try $0.snapshot(SnapshotKey(name: "s", version: "1")) }
                #expect(try Self.mapResidentKiB(fx.root) > 0, "a read makes pages resident (the measure sees them)")
                _ = try await store.restore(RestoreRequest(name: "s", version: "1", outputDir: fx.output()))
                #expect(try Self.mapResidentKiB(fx.root) == 0)
            }
        }
    }
}
