import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// Relative paths stay inside their directory, on snapshot and on restore
/// (FORMAT.md section 7); names and versions are OCI names and tags.
@Suite("Path safety")
struct PathSafetyTests {
    /// Nothing was recorded or stored: no snapshot, no content, no link.
    static func expectNothingRecorded(_ store: Snapshotter, _ fx: Fixture,
                                      sourceLocation: SourceLocation = #_sourceLocation) async throws {
        #expect(try await store.list() == [], sourceLocation: sourceLocation)
        #expect(try fx.contentFiles() == [], sourceLocation: sourceLocation)
        #expect(try fx.linkFiles() == [], sourceLocation: sourceLocation)
        #expect(try fx.storageTemps() == [], sourceLocation: sourceLocation)
    }

    @Test("lexically escaping paths are refused on snapshot before anything is recorded", arguments: [
        "/etc/passwd", "../x", "a/../../x", "..", ".", "", "a/..", "./../x", "a/./../..", "x\u{0}y",
    ])
    func escapingPathRefused(_ path: String) async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/ok.txt", "fine\n")
            try writeFile(fx.dir + "/x", "outside\n")
            try await withStore(fx) { store in
                await expectError(.invalidArgument, "\(path.debugDescription)") {
                    try await store.snapshot(SnapshotRequest(name: "p", version: "v1", baseDir: fx.base,
                                                             files: [FileRequest("ok.txt"), FileRequest(path)]))
                }
                try await Self.expectNothingRecorded(store, fx)
            }
        }
    }

    @Test("a file listed twice, in any spelling, is refused", arguments: [["a.txt", "./a.txt"], ["d/b.txt", "d//b.txt"], ["d", "d/b.txt"]])
    func duplicatePathsRefused(_ paths: [String]) async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/a.txt", "a\n")
            try writeFile(fx.base + "/d/b.txt", "b\n")
            try await withStore(fx) { store in
                await expectError(.invalidArgument) {
                    try await store.snapshot(SnapshotRequest(name: "p", version: "v1", baseDir: fx.base, files: paths.map { FileRequest($0) }))
                }
                try await Self.expectNothingRecorded(store, fx)
            }
        }
    }

    @Test("only regular files can be snapshotted; a missing file is .notFound", arguments: [
        ("dir", SnapshotterError.Code.invalidArgument), ("fifo", .invalidArgument), ("dirlink", .invalidArgument),
        ("dangling", .invalidArgument), ("missing.txt", .notFound), ("nodir/missing.txt", .notFound),
    ])
    func onlyRegularFiles(_ path: String, _ code: SnapshotterError.Code) async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/ok.txt", "ok\n")
            try makeDirs(fx.base + "/dir")
            try posix("mkfifo") { mkfifo(fx.base + "/fifo", 0o644) }
            try posix("symlink") { symlink("dir", fx.base + "/dirlink") }
            try posix("symlink") { symlink("nowhere", fx.base + "/dangling") }
            try await withStore(fx) { store in
                let e = await expectError(code, "\(path)") {
                    try await store.snapshot(SnapshotRequest(name: "p", version: "v1", baseDir: fx.base,
                                                             files: [FileRequest("ok.txt"), FileRequest(path)]))
                }
                #expect(e?.message.contains(path) == true, "the error names the file: \(e?.message ?? "")")
                try await Self.expectNothingRecorded(store, fx)
            }
        }
    }

    @Test("a missing base directory is .notFound")
    func missingBaseDirectory() async throws {
        try await withFixture { fx in
            try await withStore(fx) { store in
                await expectError(.notFound) {
                    try await store.snapshot(SnapshotRequest(name: "p", version: "v1", baseDir: fx.dir + "/nope", files: [FileRequest("f")]))
                }
            }
        }
    }

    @Test("normalisation keeps harmless paths inside and cleans them")
    func normalizeCleansHarmlessPaths() async throws {
        #expect(try PathGuard.normalize("a/./b//c") == "a/b/c")
        #expect(try PathGuard.normalize("a/b/../c") == "a/c")
        #expect(try PathGuard.normalize("./a") == "a")
        #expect(try PathGuard.normalize("a/") == "a")
        #expect(try PathGuard.normalize("..a/b..") == "..a/b..")
        await expectError(.invalidArgument) { try PathGuard.normalize(String(repeating: "a", count: 256)) }
        await expectError(.invalidArgument) { try PathGuard.normalize(String(repeating: "a/", count: 2100)) }
    }

    @Test("a path through a symlink that leaves the base directory is refused on snapshot", arguments: [
        "link/secret", "evil", "deep/inner/secret", "dotdot/secret",
    ])
    func symlinkOutOfBaseRefused(_ path: String) async throws {
        try await withFixture { fx in
            let outside = fx.dir + "/outside"
            try writeFile(outside + "/secret", "secret\n")
            try writeFile(fx.base + "/ok.txt", "fine\n")
            try makeDirs(fx.base + "/deep")
            try posix("symlink") { symlink(outside, fx.base + "/link") }
            try posix("symlink") { symlink(outside + "/secret", fx.base + "/evil") }
            try posix("symlink") { symlink("../../outside", fx.base + "/deep/inner") }
            try posix("symlink") { symlink("..", fx.base + "/dotdot") }
            try writeFile(fx.dir + "/secret", "also secret\n")
            try await withStore(fx) { store in
                for readOnly in [false, true] {
                    await expectError(.invalidArgument, "\(path) readOnly=\(readOnly)") {
                        try await store.snapshot(SnapshotRequest(name: "p", version: "v1", baseDir: fx.base,
                                                                 files: [FileRequest("ok.txt"), FileRequest(path, readOnly: readOnly)]))
                    }
                }
                try await Self.expectNothingRecorded(store, fx)
            }
            #expect(try statOf(outside + "/secret").st_nlink == 1, "the outside file was not linked into the store")
        }
    }

    @Test("a symlink anywhere in a listed path is not followed on snapshot, even one that stays inside the base", arguments: [
        "alias/data.txt", "filelink",
    ])
    func symlinkInsideBaseRefused(_ path: String) async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/real/data.txt", "data\n")
            try posix("symlink") { symlink("real", fx.base + "/alias") }
            try posix("symlink") { symlink("real/data.txt", fx.base + "/filelink") }
            try await withStore(fx) { store in
                for readOnly in [false, true] {
                    let e = await expectError(.invalidArgument, "\(path) readOnly=\(readOnly)") {
                        try await store.snapshot(SnapshotRequest(name: "p", version: "v1", baseDir: fx.base,
                                                                 files: [FileRequest("real/data.txt"), FileRequest(path, readOnly: readOnly)]))
                    }
                    #expect(e?.message.contains(path) == true, "the error names the file: \(e?.message ?? "")")
                }
                try await Self.expectNothingRecorded(store, fx)
            }
            #expect(try statOf(fx.base + "/real/data.txt").st_nlink == 1)
        }
    }

    @Test("the base directory's own path may go through a symlink (the caller chose it)")
    func symlinkedBaseDirectoryAllowed() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/d/data.txt", "data\n")
            try posix("symlink") { symlink(fx.base, fx.dir + "/baselink") }
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "p", version: "v1", baseDir: fx.dir + "/baselink",
                                                                    files: [FileRequest("d/data.txt", readOnly: true)])).info
                _ = try await store.restore(RestoreRequest(name: "p", version: "v1", outputDir: fx.output()))
                #expect(try readText(fx.output() + "/d/data.txt") == "data\n")
                try expectRestored(info, in: fx.output(), store: fx)
            }
        }
    }

    @Test("restore through a symlinked subdirectory that leaves the output is refused and writes nothing")
    func restoreThroughOutsideSymlinkRefused() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/a.txt", "a\n")
            try writeFile(fx.base + "/sub/x", "x\n")
            try writeFile(fx.base + "/sub/deeper/y", "y\n")
            let outside = fx.dir + "/outside"
            try makeDirs(outside)
            let out = fx.output()
            try makeDirs(out)
            try posix("symlink") { symlink(outside, out + "/sub") }
            try await withStore(fx) { store in
                _ = try await store.snapshot(SnapshotRequest(name: "p", version: "v1", baseDir: fx.base,
                                                             files: [FileRequest("a.txt"), FileRequest("sub/x"),
                                                                     FileRequest("sub/deeper/y", readOnly: true)]))
                for overwrite in [false, true] {
                    await expectError(.invalidArgument, "overwrite=\(overwrite)") {
                        try await store.restore(RestoreRequest(name: "p", version: "v1", outputDir: out, overwrite: overwrite))
                    }
                }
                #expect(try allFiles(under: outside) == [], "nothing was written outside")
                #expect(try names(in: out) == ["sub"], "nothing was written inside either: every path is checked first")
            }
        }
    }

    @Test("restore replaces a symlink at a file's own path without writing through it")
    func restoreReplacesFinalSymlink() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/x", "restored\n")
            let outside = fx.dir + "/outside.txt"
            try writeFile(outside, "precious\n")
            let out = fx.output()
            try makeDirs(out)
            try posix("symlink") { symlink(outside, out + "/x") }
            try await withStore(fx) { store in
                _ = try await store.snapshot(SnapshotRequest(name: "p", version: "v1", baseDir: fx.base, files: [FileRequest("x")]))
                await expectError(.alreadyExists) {
                    try await store.restore(RestoreRequest(name: "p", version: "v1", outputDir: out))
                }
                _ = try await store.restore(RestoreRequest(name: "p", version: "v1", outputDir: out, overwrite: true))
            }
            #expect(try readText(outside) == "precious\n")
            #expect((try lstatOf(out + "/x").st_mode & S_IFMT) == S_IFREG)
            #expect(try readText(out + "/x") == "restored\n")
        }
    }

    static let badNames = ["", "Upper", "a b", "-a", "a-", ".a", "a.", "a..b", "a._b", "a___b", "a//b", "/a", "a/",
                           "a:b", "a@b", "é", String(repeating: "a", count: 256)]
    static let badVersions = ["", ".v", "-v", "v/1", "v:1", "v 1", "v@1", "é", String(repeating: "v", count: 129)]

    @Test("invalid names and versions are refused with .invalidArgument by every operation")
    func invalidNamesAndVersionsRefused() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/f", "f\n")
            try await withStore(fx) { store in
                let pairs = Self.badNames.map { ($0, "v1") } + Self.badVersions.map { ("name", $0) }
                for (name, version) in pairs {
                    let what = "\(name.debugDescription):\(version.debugDescription)"
                    await expectError(.invalidArgument, "snapshot \(what)") {
                        try await store.snapshot(SnapshotRequest(name: name, version: version, baseDir: fx.base, files: [FileRequest("f")]))
                    }
                    await expectError(.invalidArgument, "restore \(what)") {
                        try await store.restore(RestoreRequest(name: name, version: version, outputDir: fx.output()))
                    }
                    await expectError(.invalidArgument, "info \(what)") { try await store.info(name: name, version: version) }
                    await expectError(.invalidArgument, "delete \(what)") { try await store.delete(name: name, version: version) }
                }
                try await Self.expectNothingRecorded(store, fx)
            }
        }
    }

    @Test("valid OCI names and tags are accepted")
    func validNamesAccepted() throws {
        for name in ["a", "a/b", "a.b", "a_b", "a__b", "a---b", "0", "ns/model-7b/ckpt.v2", String(repeating: "a", count: 255)] {
            #expect(throws: Never.self, "\(name)") { try Naming.validateName(name) }
        }
        for version in ["v", "V1", "_v", "0", "v1.0_rc-1", "A" + String(repeating: "a", count: 127)] {
            #expect(throws: Never.self, "\(version)") { try Naming.validateVersion(version) }
        }
    }
}
