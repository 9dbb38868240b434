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

    @Test("Pages read from the metadata map are given back, and read again unchanged")
    func released() async throws {
        try await withFixture { fx in
            try await withStore(fx) { store in
                let files = (0..<20_000).map {
                    SnapshotFile(relativePath: "dir/file-\($0)", digest: Digest(UInt64($0) + 1), readOnly: false,
                                 mode: 0o644, uid: 0, gid: 0, size: 1, mtimeNanos: 0)
                }
                let record = try SnapshotRecord(created: 1, files: files, givenConfig: nil).encode()
                let key = SnapshotKey(name: "m", version: "1")
                try store.meta.write { try $0.putSnapshot(key, encodedRecord: record, accessed: 1) }
                store.meta.releaseMapPages()
                let before = try Self.mapResidentKiB(fx.root)
                let read = try store.meta.read { try $0.snapshot(key) }
                let touched = try Self.mapResidentKiB(fx.root)
                let recordKiB = record.count / 1024
                #expect(touched - before >= recordKiB / 2, "reading the record made its pages resident: \(before) -> \(touched) KiB")
                store.meta.releaseMapPages()
                let after = try Self.mapResidentKiB(fx.root)
                #expect(after <= touched - recordKiB / 2, "given back: \(touched) -> \(after) KiB")
                let again = try store.meta.read { try $0.snapshot(key) }
                #expect(again?.files == files && read?.files == files)
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
