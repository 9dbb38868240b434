#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// Sys.openBeneath: a relative path opened below a directory fd never
/// leaves it and never follows a symlink.
@Suite("Open beneath a directory")
struct BeneathTests {
    @Test("plain files and directories open; symlinks anywhere on the path are refused")
    func refusesSymlinks() async throws {
        try await withTempDir { dir in try Self.check(dir) }
    }

    static func openCode(_ base: Int32, _ path: String) -> SnapshotterError.Code? {
        do {
            let fd = try Sys.openBeneath(base, path, O_RDONLY, what: path)
            Sys.close(fd)
            return nil
        } catch let e as SnapshotterError {
            return e.code
        } catch {
            return .internal
        }
    }

    static func check(_ dir: String) throws {
        try writeFile(dir + "/base/a/b/file.txt", "inside\n")
        try writeFile(dir + "/outside/file.txt", "outside\n")
        _ = try posix("symlink escape") { symlink(dir + "/outside", dir + "/base/escape") }
        _ = try posix("symlink inner") { symlink("a", dir + "/base/inner") }
        _ = try posix("symlink filelink") { symlink("a/b/file.txt", dir + "/base/filelink") }
        let base = try Sys.open(dir + "/base", O_RDONLY | O_DIRECTORY)
        defer { Sys.close(base) }
        let fd = try Sys.openBeneath(base, "a/b/file.txt", O_RDONLY, what: "file")
        var buf = [UInt8](repeating: 0, count: 16)
        let n = read(fd, &buf, 16)
        Sys.close(fd)
        let text = String(decoding: buf[0..<max(0, n)], as: UTF8.self)
        let expected = "inside\n"
        #expect(text == expected)
        let d = try Sys.openDirectoryBeneath(base, "a/b", what: "dir")
        Sys.close(d)
        for path in ["escape/file.txt", "inner/b/file.txt", "filelink", "escape", "../outside/file.txt"] {
            #expect(openCode(base, path) == .invalidArgument, "\(path)")
        }
        #expect(openCode(base, "a/missing") == .notFound)
    }
}
