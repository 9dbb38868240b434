#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

/// The registry and content transport used directly, without a store: the
/// bindings' registry clients (blobs and manifests) and content clients
/// (upload and verified download by digest). Blocking calls.
public enum RemoteObjects {
    static func registry(_ settings: RegistrySettings, name: String) throws -> any RegistryObjects {
        try Naming.validateName(name)
        guard let r = try makeRegistry(settings) as? any RegistryObjects else {
            throw SnapshotterError(.unsupported, "registry \(settings.endpoint) has no blob and manifest access")
        }
        return r
    }

    static func checkReference(_ reference: String) throws {
        if SnapshotArtifact.isSHA256Digest(reference) { return }
        try Naming.validateVersion(reference)
    }

    public static func pushBlob(_ settings: RegistrySettings, name: String, bytes: [UInt8]) throws -> String {
        try registry(settings, name: name).pushBlob(name: name, bytes: bytes)
    }

    public static func pullBlob(_ settings: RegistrySettings, name: String, digest: String) throws -> [UInt8] {
        try registry(settings, name: name).pullBlob(name: name, digest: digest)
    }

    public static func pushManifest(_ settings: RegistrySettings, name: String, reference: String, manifest: [UInt8]) throws -> String {
        try Naming.validateVersion(reference)
        return try registry(settings, name: name).pushManifest(name: name, reference: reference, manifest: manifest)
    }

    public static func pullManifest(_ settings: RegistrySettings, name: String, reference: String) throws -> [UInt8] {
        try checkReference(reference)
        return try registry(settings, name: name).pullManifest(name: name, reference: reference)
    }

    /// Uploads the content file at `path` (an SPF1 stream, as in a store)
    /// under `digest`, which it must hash to: nothing is published under
    /// a digest it does not have.
    public static func upload(_ settings: ContentSettings, digest text: String, path: String) throws {
        let digest = try Digest(parsing: text)
        let actual = try hashFile(path)
        guard actual == digest else {
            throw SnapshotterError.invalid("upload \(path): it hashes to \(actual), not \(digest)")
        }
        try makeTransport(settings).upload(digest, path: path, cancel: CancellationFlag())
    }

    /// Downloads the content of `digest` to `output` (replaced), checked
    /// against the digest before it is renamed into place.
    public static func download(_ settings: ContentSettings, digest text: String, to output: String) throws {
        let digest = try Digest(parsing: text)
        let transport = try makeTransport(settings)
        var tmp = ContentStore.tempPath(in: Paths.dirname(output))
        var fd = try Sys.open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644)
        do {
            let got = try transport.download(digest, into: fd, tempPath: tmp, cancel: CancellationFlag(), tap: nil) { _ in }
            if case .replaced(let linked) = got {
                // The daemon's cache file: the caller's output gets a copy,
                // never a link to it (writing to it would change the cache).
                Sys.close(fd)
                fd = linked
                let copy = ContentStore.tempPath(in: Paths.dirname(output))
                let out = try Sys.open(copy, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644)
                do {
                    try Sys.copyAll(from: linked, tmp, to: out, copy)
                } catch {
                    Sys.close(out)
                    try? Sys.unlinkIfExists(copy)
                    throw error
                }
                try? Sys.unlinkIfExists(tmp)
                Sys.close(linked)
                fd = out
                tmp = copy
            }
            let actual = try hashFile(tmp)
            guard actual == digest else {
                throw SnapshotterError.corrupt("download \(digest) from \(transport.remoteID): got \(actual)")
            }
            try Sys.fsync(fd, tmp)
            Sys.close(fd)
            try Sys.rename(tmp, output)
        } catch {
            Sys.close(fd)
            try? Sys.unlinkIfExists(tmp)
            throw error
        }
    }

    static func hashFile(_ path: String) throws -> Digest {
        let fd = try Sys.open(path, O_RDONLY)
        defer { Sys.close(fd) }
        let hasher = XXH3Hasher()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var offset: Int64 = 0
        while true {
            let n = try Sys.pread(fd, buffer.baseAddress!, buffer.count, offset, path)
            if n == 0 { return hasher.digest }
            hasher.update(buffer.baseAddress!, n)
            offset += Int64(n)
        }
    }
}
