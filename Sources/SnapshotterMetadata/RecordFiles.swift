import SnapshotterSystem
import SnapshotterStore

extension SnapshotRecord {
    /// The files of a record's first part (what `writeFiles` wrote), read
    /// one after the other as a config's encoder asks for them: the record
    /// stands in for the list it was written from, which its writer may then
    /// drop. Going back to an earlier index reads again from the start.
    package final class WrittenFiles: @unchecked Sendable {
        private var reader: ByteReader
        private let start: Int
        private var next = 0
        private var total: Int64 = 0
        private var failure: SnapshotterError?
        package let count: Int

        package init(_ bytes: UnsafeRawBufferPointer, key: String) throws {
            var r = ByteReader(bytes, what: "snapshot \(key)")
            _ = try r.u8()
            _ = try r.i64()
            count = Int(try r.u32())
            guard count <= bytes.count else { throw r.fail() }
            start = r.i
            reader = r
        }

        /// Only valid while the bytes are (during the record's write).
        package var list: FileList { FileList(count: count) { self.file($0) } }

        private func file(_ i: Int) -> SnapshotFile {
            if i < next {
                reader.i = start
                next = 0
                total = 0
            }
            var f = SnapshotFile(relativePath: "", digest: Digest(0), readOnly: false, mode: 0, uid: 0, gid: 0, size: 0, mtimeNanos: 0)
            while next <= i, failure == nil {
                do {
                    f = try SnapshotRecord.decodeFile(&reader, total: &total)
                    next += 1
                } catch {
                    failure = error as? SnapshotterError ?? reader.fail()
                }
            }
            return f
        }

        /// Throws when a file did not decode (what `list` then gave is wrong).
        package func check() throws {
            if let failure { throw SnapshotterError(.internal, "the record being written does not read back: \(failure.message)") }
        }
    }

    /// One file of a record's list, its size added to `total` (checked).
    static func decodeFile(_ r: inout ByteReader, total: inout Int64) throws -> SnapshotFile {
        let path = try r.string()
        let digest = Digest(try r.u64())
        let ro = try r.u8() != 0
        let mode = try r.u32(), uid = try r.u32(), gid = try r.u32()
        let size = try r.i64(), mtime = try r.i64()
        let tf = try r.u8()
        let (sum, overflow) = total.addingReportingOverflow(size)
        guard size >= 0, !overflow else { throw r.fail("file size \(size) is negative or makes the total overflow") }
        total = sum
        return SnapshotFile(relativePath: path, digest: digest, readOnly: ro, mode: mode, uid: uid, gid: gid,
                            size: size, mtimeNanos: mtime, typeflag: tf)
    }
}
