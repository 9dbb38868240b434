#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// A registry in a directory: an OCI image layout (`oci-layout`,
/// `index.json`, `blobs/sha256/<hex>`) with the same publish and fetch
/// semantics as a registry server. Each snapshot is an index entry whose
/// `org.opencontainers.image.ref.name` is `<repository>:<version>`. Blobs are
/// written temp + rename; index updates hold an flock, so several processes
/// may publish at once.
package final class LayoutRegistry: MetadataRegistry {
    package let settings: RegistrySettings
    package let root: String
    package static let refAnnotation = "org.opencontainers.image.ref.name"
    package static let indexMediaType = "application/vnd.oci.image.index.v1+json"

    package var endpointDescription: String { settings.endpoint }

    package init(_ settings: RegistrySettings) throws {
        self.settings = settings
        let path = String(settings.endpoint.dropFirst("file://".count))
        guard path.hasPrefix("/") else {
            throw SnapshotterError.invalid("registry endpoint \(settings.endpoint.debugDescription) must be file:///absolute/path")
        }
        root = path
    }

    private var blobDir: String { root + "/blobs/sha256" }
    private func blobPath(_ digest: String) -> String { blobDir + "/" + digest.dropFirst(7) }

    package func prepare() throws {
        try Sys.mkdirs(blobDir)
        let layout = root + "/oci-layout"
        if try Sys.lstatIfExists(layout) == nil {
            try writeAtomically(layout, Array("{\"imageLayoutVersion\":\"1.0.0\"}".utf8))
        }
    }

    package func publish(name: String, version: String, config: [UInt8], cancel: CancellationFlag?) throws {
        try cancel?.check()
        let repo = settings.repository(name)
        try settings.checkConfigSize(config.count, what: "publish \(repo):\(version) to \(settings.endpoint)")
        try prepare()
        let manifest = SnapshotArtifact.manifest(config: config)
        let configDigest = SHA256.digest(config)
        let manifestDigest = SHA256.digest(manifest)
        try putBlob(configDigest, config)
        try putBlob(manifestDigest, manifest)
        try setIndexEntry(ref: "\(repo):\(version)", digest: manifestDigest, size: manifest.count)
        Log.info("published \(repo):\(version) to \(settings.endpoint)")
    }

    /// Points `ref` (`repository:tag`) at a manifest in index.json, under
    /// the index lock.
    package func setIndexEntry(ref: String, digest: String, size: Int) throws {
        try withIndexLock {
            var entries = try readIndex()
            entries.removeAll { $0.ref == ref }
            entries.append(IndexEntry(ref: ref, digest: digest, size: size))
            try writeIndex(entries)
        }
    }

    package func fetch(name: String, version: String, cancel: CancellationFlag?) throws -> [UInt8] {
        try cancel?.check()
        let repo = settings.repository(name)
        let what = "fetch \(repo):\(version) from \(settings.endpoint)"
        let ref = "\(repo):\(version)"
        guard let entry = try readIndex().last(where: { $0.ref == ref }) else {
            throw SnapshotterError(.notFound, "\(what): no such snapshot in the registry")
        }
        let manifest = try readBlob(entry.digest, limit: RegistrySettings.maxManifestBytes, what: what)
        let desc = try SnapshotArtifact.parseManifest(manifest, what: what)
        guard desc.size <= settings.maxConfigBytes else {
            throw SnapshotterError(.registry, "\(what): config of \(desc.size) bytes exceeds the limit of \(settings.maxConfigBytes) bytes (max config bytes)")
        }
        let config = try readBlob(desc.digest, limit: desc.size, what: what)
        guard config.count == desc.size else {
            throw SnapshotterError(.registry, "\(what): config has \(config.count) bytes, the manifest says \(desc.size)")
        }
        return config
    }

    // MARK: blobs

    package func putBlob(_ digest: String, _ bytes: [UInt8]) throws {
        let path = blobPath(digest)
        if try Sys.lstatIfExists(path) != nil { return }
        try writeAtomically(path, bytes)
    }

    /// Reads a blob of at most `limit` bytes and checks its sha256.
    package func readBlob(_ digest: String, limit: Int, what: String) throws -> [UInt8] {
        guard SnapshotArtifact.isSHA256Digest(digest) else {
            throw SnapshotterError(.registry, "\(what): \(digest) is not a sha256 digest")
        }
        let bytes = try readFile(blobPath(digest), limit: limit, what: what)
        let actual = SHA256.digest(bytes)
        guard actual == digest else {
            throw SnapshotterError(.registry, "\(what): blob \(digest) does not match its digest (got \(actual))")
        }
        return bytes
    }

    private func readFile(_ path: String, limit: Int, what: String) throws -> [UInt8] {
        let fd: Int32
        do { fd = try Sys.open(path, O_RDONLY) } catch let e as SnapshotterError where e.code == .notFound {
            throw SnapshotterError(.registry, "\(what): \(path) is missing")
        }
        defer { Sys.close(fd) }
        let st = try Sys.fstat(fd, path)
        guard Int(st.st_size) <= limit else {
            throw SnapshotterError(.registry, "\(what): \(path) is larger than \(limit) bytes")
        }
        if st.st_size <= 0 { return [] }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        let n = try bytes.withUnsafeMutableBytes { try Sys.readFully(fd, $0.baseAddress!, $0.count, path) }
        if n < bytes.count { bytes.removeLast(bytes.count - n) }  // in place: no second copy
        return bytes
    }

    private func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let dir = Paths.dirname(path)
        let tmp = ContentStore.tempPath(in: dir)
        let fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        do {
            try bytes.withUnsafeBytes { try Sys.writeAll(fd, $0.baseAddress!, $0.count, tmp) }
            try Sys.fsync(fd, tmp)
            Sys.close(fd)
            try Sys.rename(tmp, path)
            try Sys.fsyncDirectory(dir)
        } catch {
            Sys.close(fd)
            try? Sys.unlinkIfExists(tmp)
            throw error
        }
    }

    // MARK: index

    package struct IndexEntry {
        package var ref: String
        package var digest: String
        package var size: Int
    }

    package func withIndexLock<T>(_ body: () throws -> T) throws -> T {
        let fd = try Sys.open(root + "/index.json.lock", O_RDWR | O_CREAT, 0o644)
        defer { Sys.close(fd) }
        _ = try Sys.call(.flock, "lock \(root)/index.json") { flock(fd, LOCK_EX) }
        defer { _ = flock(fd, LOCK_UN) }
        return try body()
    }

    package func readIndex() throws -> [IndexEntry] {
        let path = root + "/index.json"
        guard try Sys.lstatIfExists(path) != nil else { return [] }
        let bytes = try readFile(path, limit: 256 << 20, what: "read \(path)")
        let json: JSONValue
        do { json = try JSONValue.parse(bytes) } catch let e as SnapshotterError {
            throw SnapshotterError(.registry, "\(path) is not valid JSON: \(e.message)")
        }
        var out: [IndexEntry] = []
        for m in json["manifests"]?.arrayValue ?? [] {
            guard let ref = m["annotations"]?[Self.refAnnotation]?.stringValue,
                  let digest = m["digest"]?.stringValue, let size = m["size"]?.int64Value else { continue }
            out.append(IndexEntry(ref: ref, digest: digest, size: Int(size)))
        }
        return out
    }

    package func writeIndex(_ entries: [IndexEntry]) throws {
        var w = JSONWriter()
        w.raw("{\"schemaVersion\":2,\"mediaType\":")
        w.string(Self.indexMediaType)
        w.raw(",\"manifests\":[")
        for (i, e) in entries.sorted(by: { $0.ref < $1.ref }).enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"mediaType\":")
            w.string(SnapshotArtifact.manifestMediaType)
            w.raw(",\"artifactType\":")
            w.string(SnapshotArtifact.artifactType)
            w.raw(",\"digest\":")
            w.string(e.digest)
            w.raw(",\"size\":\(e.size),\"annotations\":{")
            w.string(Self.refAnnotation)
            w.raw(":")
            w.string(e.ref)
            w.raw("}}")
        }
        w.raw("]}")
        try writeAtomically(root + "/index.json", w.bytes)
    }
}
