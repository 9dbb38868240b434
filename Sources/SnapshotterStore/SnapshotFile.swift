import SnapshotterSystem
/// One file of a snapshot, as recorded and as published in the config.
public struct SnapshotFile: Sendable, Equatable {
    // The 8-byte fields first, the 1-byte ones last: 56 bytes a file, not
    // 64 (a snapshot of 100,000 files keeps a list of them through its
    // commit).
    public var relativePath: String
    public var digest: Digest
    /// Logical size in bytes.
    public var size: Int64
    /// Modification time in nanoseconds since the Unix epoch.
    public var mtimeNanos: Int64
    /// Permission bits only (`st_mode & 0o777`).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var readOnly: Bool
    /// The tar type flag; 0 for a regular file.
    public var typeflag: UInt8

    public init(relativePath: String, digest: Digest, readOnly: Bool, mode: UInt32, uid: UInt32, gid: UInt32,
                size: Int64, mtimeNanos: Int64, typeflag: UInt8 = 0) {
        self.relativePath = relativePath
        self.digest = digest
        self.readOnly = readOnly
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtimeNanos = mtimeNanos
        self.typeflag = typeflag
    }

    /// No file: an empty path, which every use refuses (a slot not filled
    /// yet, or a file that could not be read back).
    package static let placeholder = SnapshotFile(relativePath: "", digest: Digest(0), readOnly: false, mode: 0, uid: 0, gid: 0,
                                                  size: 0, mtimeNanos: 0)
}

/// Files in path order, read by index. The record and config writers take
/// this rather than a generic collection: a generic walk across modules is
/// not specialized, and at many files the runtime's metadata lookups and
/// value-witness copies cost more than the writing.
package struct FileList: Sendable {
    package let count: Int
    private let file: @Sendable (Int) -> SnapshotFile

    package init(count: Int, _ file: @escaping @Sendable (Int) -> SnapshotFile) {
        self.count = count
        self.file = file
    }

    package init(_ files: [SnapshotFile]) {
        self.init(count: files.count) { files[$0] }
    }

    package subscript(_ i: Int) -> SnapshotFile { file(i) }

    package var indices: Range<Int> { 0..<count }
}
