import CSnapshotterABI
import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

// Registry and content clients without a store (include/snapshotter.h,
// "Registry and content clients"): they translate and call RemoteObjects.

/// The registry and content settings of `opts`.
private func remoteSettings(_ opts: OpaquePointer?) throws -> StoreOptions {
    try Handles.require(opts, OptionsHandle.self, "options").resolved()
}

private func registrySettings(_ opts: OpaquePointer?) throws -> RegistrySettings {
    guard let r = try remoteSettings(opts).registry else {
        throw SnapshotterError(.invalidArgument, "no registry endpoint is set in the options")
    }
    return r
}

private func contentSettings(_ opts: OpaquePointer?) throws -> ContentSettings {
    guard let c = try remoteSettings(opts).content else {
        throw SnapshotterError(.invalidArgument, "no content URL or Dragonfly endpoint is set in the options")
    }
    return c
}

/// Runs a blocking client call; refused from a callback like other
/// blocking calls.
private func blocking(_ body: () throws -> Int32) -> Int32 {
    guarded {
        guard !ThreadState.current.inCallback else {
            throw SnapshotterError(.busy, "a blocking call is not allowed from a callback")
        }
        return try body()
    }
}

private func bytes(_ data: UnsafeRawPointer?, _ len: Int) throws -> [UInt8] {
    if len == 0 { return [] }
    guard let data else { throw SnapshotterError(.invalidArgument, "data is NULL") }
    return Array(UnsafeRawBufferPointer(start: data, count: len))
}

/// Hands bytes to C in malloc'd memory (freed with snapshotter_free).
private func give(_ b: [UInt8], _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                  _ len: UnsafeMutablePointer<Int>?) throws -> Int32 {
    guard let out, let len else { throw SnapshotterError(.invalidArgument, "output pointer is NULL") }
    guard let p = malloc(max(b.count, 1)) else { throw SnapshotterError(.noSpace, "out of memory") }
    b.withUnsafeBytes { if $0.count > 0 { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
    out.pointee = p
    len.pointee = b.count
    return Status.ok
}

private func giveString(_ s: String, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) throws -> Int32 {
    guard let out else { throw SnapshotterError(.invalidArgument, "output pointer is NULL") }
    guard let p = strdup(s) else { throw SnapshotterError(.noSpace, "out of memory") }
    out.pointee = p
    return Status.ok
}

@_cdecl("snapshotter_free")
public func snapshotter_free(_ p: UnsafeMutableRawPointer?) { free(p) }

@_cdecl("snapshotter_registry_push_blob")
public func snapshotter_registry_push_blob(_ opts: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                                           _ data: UnsafeRawPointer?, _ len: Int,
                                           _ digestOut: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    digestOut?.pointee = nil
    return blocking {
        let d = try RemoteObjects.pushBlob(try registrySettings(opts), name: try cString(name, "name"), bytes: try bytes(data, len))
        return try giveString(d, digestOut)
    }
}

@_cdecl("snapshotter_registry_pull_blob")
public func snapshotter_registry_pull_blob(_ opts: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ digest: UnsafePointer<CChar>?,
                                           _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                           _ len: UnsafeMutablePointer<Int>?) -> Int32 {
    out?.pointee = nil
    return blocking {
        let b = try RemoteObjects.pullBlob(try registrySettings(opts), name: try cString(name, "name"), digest: try cString(digest, "digest"))
        return try give(b, out, len)
    }
}

@_cdecl("snapshotter_registry_push_manifest")
public func snapshotter_registry_push_manifest(_ opts: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                                               _ reference: UnsafePointer<CChar>?,
                                               _ data: UnsafeRawPointer?, _ len: Int,
                                               _ digestOut: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    digestOut?.pointee = nil
    return blocking {
        let d = try RemoteObjects.pushManifest(try registrySettings(opts), name: try cString(name, "name"),
                                               reference: try cString(reference, "reference"), manifest: try bytes(data, len))
        return try giveString(d, digestOut)
    }
}

@_cdecl("snapshotter_registry_pull_manifest")
public func snapshotter_registry_pull_manifest(_ opts: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                                               _ reference: UnsafePointer<CChar>?,
                                               _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                               _ len: UnsafeMutablePointer<Int>?) -> Int32 {
    out?.pointee = nil
    return blocking {
        let b = try RemoteObjects.pullManifest(try registrySettings(opts), name: try cString(name, "name"),
                                               reference: try cString(reference, "reference"))
        return try give(b, out, len)
    }
}

@_cdecl("snapshotter_content_upload")
public func snapshotter_content_upload(_ opts: OpaquePointer?, _ digest: UnsafePointer<CChar>?,
                                       _ path: UnsafePointer<CChar>?) -> Int32 {
    blocking {
        try RemoteObjects.upload(try contentSettings(opts), digest: try cString(digest, "digest"), path: try cString(path, "path"))
        return Status.ok
    }
}

@_cdecl("snapshotter_content_download")
public func snapshotter_content_download(_ opts: OpaquePointer?, _ digest: UnsafePointer<CChar>?,
                                         _ output: UnsafePointer<CChar>?) -> Int32 {
    blocking {
        try RemoteObjects.download(try contentSettings(opts), digest: try cString(digest, "digest"),
                                   to: try cString(output, "output path"))
        return Status.ok
    }
}
