#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// Blob and manifest operations of a registry, for the bindings' registry
/// clients (the Go API's oci.Client). Pulled objects are checked against
/// their sha256 digest and a size limit.
package protocol RegistryObjects: MetadataRegistry {
    /// Pushes a blob (nothing when the registry has it); returns its digest.
    func pushBlob(name: String, bytes: [UInt8]) throws -> String
    func pullBlob(name: String, digest: String) throws -> [UInt8]
    /// Pushes a manifest under `reference` (a tag); returns its digest.
    func pushManifest(name: String, reference: String, manifest: [UInt8]) throws -> String
    /// Pulls the manifest of `reference` (a tag or a sha256 digest).
    func pullManifest(name: String, reference: String) throws -> [UInt8]
}

extension DistributionRegistry: RegistryObjects {
    package func pushBlob(name: String, bytes: [UInt8]) throws -> String {
        let repo = settings.repository(name)
        let what = "push a blob to \(repo) at \(base)"
        let digest = SHA256.digest(bytes)
        let head = try send(HTTPRequest(method: "HEAD", url: "\(base)/v2/\(repo)/blobs/\(digest)"), repo: repo, what: what, push: true)
        if head.status == 200 { return digest }
        guard head.status == 404 else { throw failure(head, what: "\(what): checking for \(digest)") }
        let start = try send(HTTPRequest(method: "POST", url: "\(base)/v2/\(repo)/blobs/uploads/", body: []),
                             repo: repo, what: what, push: true)
        guard start.status == 202, let location = start.header("location") else {
            throw failure(start, what: "\(what): starting the upload")
        }
        var url = location.hasPrefix("http://") || location.hasPrefix("https://") ? location : origin + location
        url += (url.contains("?") ? "&" : "?") + "digest=" + percentEncode(digest)
        let put = try send(HTTPRequest(method: "PUT", url: url, headers: ["Content-Type: application/octet-stream"], body: bytes),
                           repo: repo, what: what, push: true)
        guard put.status == 201 || put.status == 204 else { throw failure(put, what: "\(what): uploading \(digest)") }
        return digest
    }

    package func pullBlob(name: String, digest: String) throws -> [UInt8] {
        let repo = settings.repository(name)
        let what = "pull blob \(digest) of \(repo) from \(base)"
        guard SnapshotArtifact.isSHA256Digest(digest) else { throw SnapshotterError.invalid("\(what): not a sha256 digest") }
        let r = try send(HTTPRequest(url: "\(base)/v2/\(repo)/blobs/\(digest)", maxResponseBytes: settings.maxConfigBytes),
                         repo: repo, what: what)
        if r.status == 404 { throw SnapshotterError(.notFound, "\(what): no such blob\(errorDetail(r))") }
        guard r.status == 200 else { throw failure(r, what: what) }
        guard SHA256.digest(r.body) == digest else { throw SnapshotterError(.registry, "\(what): the blob does not match its digest") }
        return r.body
    }

    package func pushManifest(name: String, reference: String, manifest: [UInt8]) throws -> String {
        let repo = settings.repository(name)
        let what = "push manifest \(repo):\(reference) to \(base)"
        guard manifest.count <= RegistrySettings.maxManifestBytes else {
            throw SnapshotterError.invalid("\(what): the manifest is larger than \(RegistrySettings.maxManifestBytes) bytes")
        }
        let put = try send(HTTPRequest(method: "PUT", url: "\(base)/v2/\(repo)/manifests/\(reference)",
                                       headers: ["Content-Type: \(SnapshotArtifact.manifestMediaType)"], body: manifest),
                           repo: repo, what: what, push: true)
        guard put.status == 201 || put.status == 200 || put.status == 204 else { throw failure(put, what: what) }
        return SHA256.digest(manifest)
    }

    package func pullManifest(name: String, reference: String) throws -> [UInt8] {
        let repo = settings.repository(name)
        let what = "pull manifest \(repo):\(reference) from \(base)"
        let r = try send(HTTPRequest(url: "\(base)/v2/\(repo)/manifests/\(reference)",
                                     headers: ["Accept: \(SnapshotArtifact.manifestMediaType)"],
                                     maxResponseBytes: RegistrySettings.maxManifestBytes),
                         repo: repo, what: what)
        if r.status == 404 { throw SnapshotterError(.notFound, "\(what): no such manifest\(errorDetail(r))") }
        guard r.status == 200 else { throw failure(r, what: what) }
        if SnapshotArtifact.isSHA256Digest(reference), SHA256.digest(r.body) != reference {
            throw SnapshotterError(.registry, "\(what): the manifest does not match its digest")
        }
        return r.body
    }
}

extension LayoutRegistry: RegistryObjects {
    package func pushBlob(name: String, bytes: [UInt8]) throws -> String {
        try prepare()
        let digest = SHA256.digest(bytes)
        try putBlob(digest, bytes)
        return digest
    }

    package func pullBlob(name: String, digest: String) throws -> [UInt8] {
        let what = "pull blob \(digest) from \(settings.endpoint)"
        guard SnapshotArtifact.isSHA256Digest(digest) else { throw SnapshotterError.invalid("\(what): not a sha256 digest") }
        guard try Sys.lstatIfExists(blobDirectory + "/" + digest.dropFirst(7)) != nil else {
            throw SnapshotterError(.notFound, "\(what): no such blob")
        }
        return try readBlob(digest, limit: settings.maxConfigBytes, what: what)
    }

    package func pushManifest(name: String, reference: String, manifest: [UInt8]) throws -> String {
        let repo = settings.repository(name)
        guard manifest.count <= RegistrySettings.maxManifestBytes else {
            throw SnapshotterError.invalid("push manifest \(repo):\(reference): larger than \(RegistrySettings.maxManifestBytes) bytes")
        }
        try prepare()
        let digest = SHA256.digest(manifest)
        try putBlob(digest, manifest)
        try setIndexEntry(ref: "\(repo):\(reference)", digest: digest, size: manifest.count)
        return digest
    }

    package func pullManifest(name: String, reference: String) throws -> [UInt8] {
        let repo = settings.repository(name)
        let what = "pull manifest \(repo):\(reference) from \(settings.endpoint)"
        let digest: String
        if SnapshotArtifact.isSHA256Digest(reference) {
            digest = reference
        } else if let entry = try readIndex().last(where: { $0.ref == "\(repo):\(reference)" }) {
            digest = entry.digest
        } else {
            throw SnapshotterError(.notFound, "\(what): no such manifest")
        }
        return try readBlob(digest, limit: RegistrySettings.maxManifestBytes, what: what)
    }

    private var blobDirectory: String { root + "/blobs/sha256" }
}
