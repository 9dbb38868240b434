import CSnapshotterABI
import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

/// Lays results out in one malloc'd block (header, pointer array, items,
/// strings) so C walks them and frees them with one call.
struct Arena {
    private(set) var size = 0
    private var strings: [(Int, [UInt8])] = []

    mutating func reserve<T>(_: T.Type, count: Int = 1) -> Int {
        let a = MemoryLayout<T>.alignment
        size = (size + a - 1) / a * a
        let offset = size
        size += MemoryLayout<T>.stride * count
        return offset
    }

    mutating func string(_ s: String) -> Int {
        let bytes = Array(s.utf8) + [0]
        let offset = size
        strings.append((offset, bytes))
        size += bytes.count
        return offset
    }

    mutating func bytes(_ b: [UInt8]) -> Int {
        let offset = size
        strings.append((offset, b + [0]))
        size += b.count + 1
        return offset
    }

    /// Allocates the block and copies the strings in.
    func allocate() -> UnsafeMutableRawPointer? {
        guard let base = calloc(1, max(size, 1)) else { return nil }
        for (offset, bytes) in strings {
            bytes.withUnsafeBytes { (base + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        return base
    }
}

enum Pack {
    static func snapshotList(_ items: [SnapshotSummary]) -> UnsafeMutablePointer<snapshotter_snapshot_list_t>? {
        var a = Arena()
        let header = a.reserve(snapshotter_snapshot_list_t.self)
        let ptrs = a.reserve(UnsafePointer<snapshotter_snapshot_info_t>?.self, count: items.count)
        let first = a.reserve(snapshotter_snapshot_info_t.self, count: items.count)
        let strs = items.map { (a.string($0.name), a.string($0.version)) }
        guard let base = a.allocate() else { return nil }
        let stride = MemoryLayout<snapshotter_snapshot_info_t>.stride
        let ptrBase = (base + ptrs).assumingMemoryBound(to: UnsafePointer<snapshotter_snapshot_info_t>?.self)
        for (i, s) in items.enumerated() {
            let item = (base + first + i * stride).assumingMemoryBound(to: snapshotter_snapshot_info_t.self)
            var v = snapshotter_snapshot_info_t()
            v.name = UnsafePointer((base + strs[i].0).assumingMemoryBound(to: CChar.self))
            v.version = UnsafePointer((base + strs[i].1).assumingMemoryBound(to: CChar.self))
            v.created_ns = s.createdNanos
            v.last_accessed_ns = s.lastAccessedNanos
            v.file_count = Int64(s.fileCount)
            v.total_size = s.totalSize
            item.initialize(to: v)
            ptrBase[i] = UnsafePointer(item)
        }
        let h = (base + header).assumingMemoryBound(to: snapshotter_snapshot_list_t.self)
        var hv = snapshotter_snapshot_list_t()
        hv.count = items.count
        hv.items = items.isEmpty ? nil : UnsafePointer(ptrBase)
        h.initialize(to: hv)
        return h
    }

    static func fileList(_ info: SnapshotInfo) -> UnsafeMutablePointer<snapshotter_file_list_t>? {
        let files = info.files
        var a = Arena()
        let header = a.reserve(snapshotter_file_list_t.self)
        let ptrs = a.reserve(UnsafePointer<snapshotter_file_info_t>?.self, count: files.count)
        let first = a.reserve(snapshotter_file_info_t.self, count: files.count)
        let strs = files.map { (a.string($0.relativePath), a.string($0.digest.description)) }
        let config = a.bytes(info.config)
        guard let base = a.allocate() else { return nil }
        let stride = MemoryLayout<snapshotter_file_info_t>.stride
        let ptrBase = (base + ptrs).assumingMemoryBound(to: UnsafePointer<snapshotter_file_info_t>?.self)
        for (i, f) in files.enumerated() {
            let item = (base + first + i * stride).assumingMemoryBound(to: snapshotter_file_info_t.self)
            var v = snapshotter_file_info_t()
            v.relative_path = UnsafePointer((base + strs[i].0).assumingMemoryBound(to: CChar.self))
            v.digest = UnsafePointer((base + strs[i].1).assumingMemoryBound(to: CChar.self))
            v.read_only = f.readOnly ? 1 : 0
            v.mode = f.mode
            v.uid = f.uid
            v.gid = f.gid
            v.size = f.size
            v.mtime_ns = f.mtimeNanos
            item.initialize(to: v)
            ptrBase[i] = UnsafePointer(item)
        }
        let h = (base + header).assumingMemoryBound(to: snapshotter_file_list_t.self)
        var hv = snapshotter_file_list_t()
        hv.count = files.count
        hv.items = files.isEmpty ? nil : UnsafePointer(ptrBase)
        hv.config_json = UnsafePointer((base + config).assumingMemoryBound(to: CChar.self))
        hv.config_json_size = info.config.count
        h.initialize(to: hv)
        return h
    }

    static func verifyReport(_ r: VerifyReport) -> UnsafeMutablePointer<snapshotter_verify_report_t>? {
        let problems = r.problems
        var a = Arena()
        let header = a.reserve(snapshotter_verify_report_t.self)
        let ptrs = a.reserve(UnsafePointer<snapshotter_problem_t>?.self, count: problems.count)
        let first = a.reserve(snapshotter_problem_t.self, count: problems.count)
        let repairPtrs = a.reserve(UnsafePointer<CChar>?.self, count: r.repairs.count)
        let strs = problems.map { p in
            (a.string(p.kind.rawValue), p.digest.map { a.string($0.description) }, p.snapshot.map { a.string($0) },
             a.string(p.message))
        }
        let repairStrs = r.repairs.map { a.string($0) }
        guard let base = a.allocate() else { return nil }
        func str(_ off: Int) -> UnsafePointer<CChar> { UnsafePointer((base + off).assumingMemoryBound(to: CChar.self)) }
        let stride = MemoryLayout<snapshotter_problem_t>.stride
        let ptrBase = (base + ptrs).assumingMemoryBound(to: UnsafePointer<snapshotter_problem_t>?.self)
        for i in problems.indices {
            let item = (base + first + i * stride).assumingMemoryBound(to: snapshotter_problem_t.self)
            var v = snapshotter_problem_t()
            v.kind = str(strs[i].0)
            v.digest = strs[i].1.map(str)
            v.snapshot = strs[i].2.map(str)
            v.message = str(strs[i].3)
            item.initialize(to: v)
            ptrBase[i] = UnsafePointer(item)
        }
        let h = (base + header).assumingMemoryBound(to: snapshotter_verify_report_t.self)
        var hv = snapshotter_verify_report_t()
        hv.snapshots_checked = Int64(r.snapshotsChecked)
        hv.content_files_checked = Int64(r.contentFilesChecked)
        hv.bytes_checked = r.bytesChecked
        hv.problem_count = problems.count
        hv.problems = problems.isEmpty ? nil : UnsafePointer(ptrBase)
        let repairBase = (base + repairPtrs).assumingMemoryBound(to: UnsafePointer<CChar>?.self)
        for (i, off) in repairStrs.enumerated() { repairBase[i] = str(off) }
        hv.repair_count = r.repairs.count
        hv.repairs = r.repairs.isEmpty ? nil : UnsafePointer(repairBase)
        h.initialize(to: hv)
        return h
    }
}

