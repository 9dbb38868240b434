import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata

/// Version 3 records: a header, and the files in parts (RecordParts.swift).
/// What the store holds is outside data: a malformed header or part is an
/// error naming the snapshot, never a trap.
@Suite("Record format 3")
struct RecordPartsTests {
    static let files = HeldSnapshotFilesTests.files(37)

    /// Decodes `header` with `parts` as its parts.
    static func decode(_ header: [UInt8], _ parts: [[UInt8]]) throws -> SnapshotRecord {
        // Copies that stay put while the record is read.
        let buffers = parts.map { p in
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, p.count), alignment: 1)
            b.copyBytes(from: p)
            return (b, p.count)
        }
        defer { buffers.forEach { $0.0.deallocate() } }
        return try header.withUnsafeBytes { h in
            try SnapshotRecord.decode(h, key: "p:1", part: { i in
                guard i >= 0, i < buffers.count else { return nil }
                return UnsafeRawBufferPointer(rebasing: buffers[i].0[..<buffers[i].1])
            })
        }
    }

    static func part(_ range: Range<Int>) -> [UInt8] {
        var w = ByteWriter()
        SnapshotRecord.writePart(to: &w, FileList(files), range)
        #expect(w.bytes.count == SnapshotRecord.partSize(FileList(files), range))
        return w.bytes
    }

    static func header(count: Int = 37, parts: Int, writer: [UInt8]? = nil, given: [UInt8]? = nil) throws -> [UInt8] {
        try SnapshotRecord.Header(created: 9, count: count, parts: parts, writer: writer, given: given).encode()
    }

    @Test("Parts of any sizes read back as the files in order, with the header's config")
    func roundTrip() throws {
        let parts = [Self.part(0..<3), Self.part(3..<20), Self.part(20..<21), Self.part(21..<37)]
        let rec = try Self.decode(try Self.header(parts: 4, given: [1, 2]), parts)
        #expect(rec.files == Self.files && rec.created == 9 && rec.givenConfig == [1, 2])
        let canonical = try Self.decode(try Self.header(parts: 4), parts)
        #expect(canonical.config == SnapshotConfig.encode(Self.files))
        let h = SnapshotRecord.Header(created: -4, count: 5, parts: 2, writer: [7, 7], given: nil)
        #expect(try h.encode().withUnsafeBytes { try SnapshotRecord.Header.decode($0, key: "p:1") } == h)
        #expect(try Array(repeating: UInt8(1), count: 20).withUnsafeBytes { try SnapshotRecord.Header.decode($0, key: "p:1") } == nil,
                "another version is not a header")
    }

    @Test("A missing part, counts that disagree, a part claiming more files than its bytes hold or bytes after it are corrupt")
    func malformedParts() async throws {
        let parts = [Self.part(0..<20), Self.part(20..<37)]
        var e = await expectError(.corrupt) { try Self.decode(try Self.header(parts: 3), parts) }
        #expect(e?.message.contains("part 2 of 3 is missing") == true, "\(e?.message ?? "")")
        e = await expectError(.corrupt) { try Self.decode(try Self.header(count: 36, parts: 2), parts) }
        #expect(e?.message.contains("hold 37 files, its header says 36") == true, "\(e?.message ?? "")")
        var huge = parts[1]
        huge.replaceSubrange(0..<4, with: [0xff, 0xff, 0xff, 0xff])
        e = await expectError(.corrupt) { try Self.decode(try Self.header(parts: 2), [parts[0], huge]) }
        #expect(e?.message.contains("snapshot p:1 part 1") == true, "\(e?.message ?? "")")
        await expectError(.corrupt) { try Self.decode(try Self.header(parts: 2), [parts[0], parts[1] + [0]]) }
        await expectError(.corrupt) { try Self.decode(try Self.header(parts: 2), [parts[0], Array(parts[1].dropLast())]) }
        e = await expectError(.corrupt) { try Self.decode(try Self.header(parts: 2, writer: [1]), parts) }
        #expect(e?.message.contains("still being written") == true, "\(e?.message ?? "")")
    }

    @Test("A malformed header is corrupt: cut, bad flags, more parts than files, bytes after it")
    func malformedHeader() async throws {
        let good = try Self.header(parts: 2, writer: [3], given: [4])
        for cut in 1..<good.count {
            await expectError(.corrupt) { try Array(good.prefix(cut)).withUnsafeBytes { try SnapshotRecord.Header.decode($0, key: "p:1") } }
        }
        await expectError(.corrupt) { try (good + [0]).withUnsafeBytes { try SnapshotRecord.Header.decode($0, key: "p:1") } }
        var flag = try Self.header(parts: 2)
        flag[17] = 2
        let e = await expectError(.corrupt) { try flag.withUnsafeBytes { try SnapshotRecord.Header.decode($0, key: "p:1") } }
        #expect(e?.message.contains("writer flag 2") == true, "\(e?.message ?? "")")
        await expectError(.corrupt) { try (try Self.header(count: 1, parts: 2)).withUnsafeBytes { try SnapshotRecord.Header.decode($0, key: "p:1") } }
    }

    @Test("Held in the map, a record in parts of odd sizes reads back by index in any order")
    func heldParts() async throws {
        try await withFixture { fx in
            try await withStore(fx) { store in
                let key = SnapshotKey(name: "p", version: "1")
                let list = FileList(Self.files)
                try store.meta.write { txn in
                    for (i, r) in [0..<1, 1..<18, 18..<19, 19..<37].enumerated() { try txn.putPart(key, i, list, r) }
                    try txn.putSnapshotHeader(key, SnapshotRecord.Header(created: 1, count: 37, parts: 4, writer: nil, given: nil))
                }
                let held = try #require(try store.meta.heldSnapshotFiles(key))
                defer { held.end() }
                #expect(held.count == 37 && held.totalSize == Self.files.reduce(0) { $0 + $1.size })
                #expect(Array(0..<37).shuffled().allSatisfy { held.file($0) == Self.files[$0] })
                #expect(held.file(37).relativePath.isEmpty)
            }
        }
    }
}
