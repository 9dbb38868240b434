import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SnapshotterCore

/// Sources that change while a snapshot reads them (issue 12, items 7 and
/// 8): what is stored under a digest is always the bytes that hash to it.
/// SnapshotHooks make each change happen at one exact point.
@Suite("Snapshot source changes")
struct SnapshotSourceChangeTests {
    static let original = "original bytes, read and hashed\n"
    static let replacement = "REPLACEMENT bytes, never hashed\n"

    /// Runs `body` with `hook` installed on the store.
    static func withHook<T>(_ store: Snapshotter, _ hook: @escaping SnapshotHooks.Hook,
                            _ body: () async throws -> T) async throws -> T {
        SnapshotHooks.install(root: store.root, hook)
        defer { SnapshotHooks.remove(root: store.root) }
        return try await body()
    }

    /// The read-only file's store link holds the original bytes and restore
    /// hands them out.
    static func expectOriginalStored(_ info: SnapshotInfo, _ fx: Fixture, _ store: Snapshotter,
                                     sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let f = try #require(info.files.first, sourceLocation: sourceLocation)
        let link = fx.linkDir + "/" + f.digest.hex
        #expect(try readText(link) == original, "the store's link has the hashed bytes", sourceLocation: sourceLocation)
        #expect(try spf1Digest(link) == f.digest, sourceLocation: sourceLocation)
        _ = try await store.restore(RestoreRequest(name: info.name, version: info.version, outputDir: fx.output()))
        #expect(try readText(fx.output() + "/" + f.relativePath) == original, sourceLocation: sourceLocation)
        try expectRestored(info, in: fx.output(), store: fx)
    }

    @Test("a read-only source renamed away and replaced (same size and mtime) after it was read: the store links the inode that was read")
    func replacedByRenameAfterRead() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/model.bin", Self.original)
            try writeFile(fx.dir + "/replacement", Self.replacement)
            let originalInode = try statOf(fx.base + "/model.bin").st_ino
            try await withStore(fx) { store in
                let base = fx.base, dir = fx.dir
                let info = try await Self.withHook(store, { point in
                    guard case .read(relativePath: "model.bin", attempt: 1) = point else { return }
                    // The inode that was read lives on under another name.
                    rename(base + "/model.bin", dir + "/moved")
                    rename(dir + "/replacement", base + "/model.bin")
                }) {
                    try await store.snapshot(SnapshotRequest(name: "m", version: "v1", baseDir: fx.base,
                                                             files: [FileRequest("model.bin", readOnly: true)])).info
                }
                #expect(try readText(fx.base + "/model.bin") == Self.replacement, "the hook ran")
                let f = try #require(info.files.first)
                #expect(f.digest == (try spf1Digest(fx.dir + "/moved")))
                #expect(try statOf(fx.linkDir + "/" + f.digest.hex).st_ino == originalInode, "the link is the inode that was read")
                try await Self.expectOriginalStored(info, fx, store)
            }
        }
    }

    @Test("a read-only source unlinked and replaced after it was read: the link is a copy of the descriptor's bytes")
    func unlinkedAfterRead() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/model.bin", Self.original)
            try await withStore(fx) { store in
                let base = fx.base
                let info = try await Self.withHook(store, { point in
                    guard case .read(relativePath: "model.bin", attempt: 1) = point else { return }
                    // No name is left for the inode that was read: linkat
                    // of /proc/self/fd fails, as it does without /proc.
                    unlink(base + "/model.bin")
                    try? writeFile(base + "/model.bin", Self.replacement)
                }) {
                    try await store.snapshot(SnapshotRequest(name: "m", version: "v1", baseDir: fx.base,
                                                             files: [FileRequest("model.bin", readOnly: true)])).info
                }
                #expect(try readText(fx.base + "/model.bin") == Self.replacement, "the hook ran")
                let f = try #require(info.files.first)
                #expect(try statOf(fx.linkDir + "/" + f.digest.hex).st_ino != statOf(fx.base + "/model.bin").st_ino)
                try await Self.expectOriginalStored(info, fx, store)
            }
        }
    }
}
