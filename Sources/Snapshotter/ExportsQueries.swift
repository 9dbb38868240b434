import CSnapshotterABI
import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

// The C ABI: queries and the results callers free.

// MARK: queries and results

@_cdecl("snapshotter_list")
public func snapshotter_list(_ s: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<snapshotter_snapshot_list_t>?>?) -> Int32 {
    guarded {
        guard let out else { throw SnapshotterError(.invalidArgument, "out pointer is NULL") }
        out.pointee = nil
        let store = try Handles.require(s, StoreHandle.self, "store")
        guard !ThreadState.current.inCallback else { throw SnapshotterError(.busy, "snapshotter_list cannot be called from a callback") }
        let items = try blockOnThrowing { try await store.engine.list() }
        guard let packed = Pack.snapshotList(items) else { return Status.fail(Status.noMemory, "out of memory") }
        out.pointee = packed
        return Status.ok
    }
}

@_cdecl("snapshotter_files")
public func snapshotter_files(_ s: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
                              _ out: UnsafeMutablePointer<UnsafeMutablePointer<snapshotter_file_list_t>?>?) -> Int32 {
    guarded {
        guard let out else { throw SnapshotterError(.invalidArgument, "out pointer is NULL") }
        out.pointee = nil
        let store = try Handles.require(s, StoreHandle.self, "store")
        let n = try cString(name, "name"), v = try cString(version, "version")
        guard !ThreadState.current.inCallback else { throw SnapshotterError(.busy, "snapshotter_files cannot be called from a callback") }
        let info = try blockOnThrowing { try await store.engine.info(name: n, version: v) }
        guard let packed = Pack.fileList(info) else { return Status.fail(Status.noMemory, "out of memory") }
        out.pointee = packed
        return Status.ok
    }
}

@_cdecl("snapshotter_stats")
public func snapshotter_stats(_ s: OpaquePointer?, _ out: UnsafeMutablePointer<snapshotter_stats_t>?) -> Int32 {
    guarded {
        guard let out else { throw SnapshotterError(.invalidArgument, "out pointer is NULL") }
        let store = try Handles.require(s, StoreHandle.self, "store")
        guard !ThreadState.current.inCallback else { throw SnapshotterError(.busy, "snapshotter_stats cannot be called from a callback") }
        let st = try blockOnThrowing { try await store.engine.stats() }
        var v = snapshotter_stats_t()
        v.size = UInt32(MemoryLayout<snapshotter_stats_t>.size)
        v.store_bytes = st.storeBytes
        v.content_files = Int64(st.contentFiles)
        v.snapshots = Int64(st.snapshots)
        v.oldest_access_ns = st.oldestAccessNanos ?? 0
        v.disk_total_bytes = st.disk.totalBytes
        v.disk_used_bytes = st.disk.usedBytes
        let n = min(Int(out.pointee.size), MemoryLayout<snapshotter_stats_t>.size)
        withUnsafeBytes(of: &v) { UnsafeMutableRawPointer(out).copyMemory(from: $0.baseAddress!, byteCount: max(n, 0)) }
        if n >= 4 { out.pointee.size = UInt32(n) }
        return Status.ok
    }
}

@_cdecl("snapshotter_snapshot_list_free")
public func snapshotter_snapshot_list_free(_ list: UnsafeMutablePointer<snapshotter_snapshot_list_t>?) { free(list) }

@_cdecl("snapshotter_file_list_free")
public func snapshotter_file_list_free(_ list: UnsafeMutablePointer<snapshotter_file_list_t>?) { free(list) }

@_cdecl("snapshotter_verify_report_free")
public func snapshotter_verify_report_free(_ r: UnsafeMutablePointer<snapshotter_verify_report_t>?) { free(r) }
