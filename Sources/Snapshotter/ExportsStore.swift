import CSnapshotterABI
import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

// The C ABI: options, stores and file lists.

// MARK: options

@_cdecl("snapshotter_options_new")
public func snapshotter_options_new() -> OpaquePointer? {
    Handles.register(OptionsHandle())
}

@_cdecl("snapshotter_options_free")
public func snapshotter_options_free(_ opts: OpaquePointer?) {
    _ = Handles.remove(opts, as: OptionsHandle.self)
}

// MARK: store

@_cdecl("snapshotter_open")
public func snapshotter_open(_ root: UnsafePointer<CChar>?, _ opts: OpaquePointer?,
                             _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        guard let out else { throw SnapshotterError(.invalidArgument, "out pointer is NULL") }
        out.pointee = nil
        let path = try cString(root, "root directory")
        var options = StoreOptions()
        if opts != nil { options = try Handles.require(opts, OptionsHandle.self, "options").resolved() }
        let engine = try Snapshotter(root: path, options: options)
        out.pointee = Handles.register(StoreHandle(engine: engine))
        return Status.ok
    }
}

@_cdecl("snapshotter_close")
public func snapshotter_close(_ s: OpaquePointer?) -> Int32 {
    guarded {
        guard s != nil else { return Status.ok }
        guard !ThreadState.current.inCallback else {
            throw SnapshotterError(.busy, "snapshotter_close cannot be called from a callback")
        }
        guard let store = Handles.remove(s, as: StoreHandle.self) else {
            throw SnapshotterError(.invalidArgument, "store handle is invalid or already closed")
        }
        // In a forked child: forget the handle, leak its memory (header).
        if Handles.isForked(store) { Handles.abandon(store); return Status.ok }
        store.close()
        return Status.ok
    }
}

@_cdecl("snapshotter_reconfigure")
public func snapshotter_reconfigure(_ s: OpaquePointer?, _ opts: OpaquePointer?) -> Int32 {
    guarded {
        let store = try Handles.require(s, StoreHandle.self, "store")
        let o = try Handles.require(opts, OptionsHandle.self, "options")
        let resolved = try o.resolved()
        try store.engine.setRegistry(resolved.registry)
        try store.engine.setContent(resolved.content)
        return Status.ok
    }
}

@_cdecl("snapshotter_active_operations")
public func snapshotter_active_operations(_ s: OpaquePointer?) -> Int32 {
    guarded { Int32(try Handles.require(s, StoreHandle.self, "store").runningCount) }
}

// MARK: file lists

@_cdecl("snapshotter_files_new")
public func snapshotter_files_new() -> OpaquePointer? {
    Handles.register(FilesHandle())
}

@_cdecl("snapshotter_files_add")
public func snapshotter_files_add(_ files: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ readOnly: Int32) -> Int32 {
    guarded {
        let f = try Handles.require(files, FilesHandle.self, "files")
        f.files.append(FileRequest(try cString(path, "relative path"), readOnly: readOnly != 0))
        return Status.ok
    }
}

@_cdecl("snapshotter_files_free")
public func snapshotter_files_free(_ files: OpaquePointer?) {
    _ = Handles.remove(files, as: FilesHandle.self)
}
