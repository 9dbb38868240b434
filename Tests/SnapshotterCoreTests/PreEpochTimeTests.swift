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

/// Modification times before 1970 have a negative second and a positive
/// nanosecond part; any Int64 of nanoseconds (a config may hold one)
/// converts without trapping.
@Suite("Pre-1970 times")
struct PreEpochTimeTests {
    @Test("nanoseconds convert to a timespec with 0 <= tv_nsec < 1e9 that adds back up",
          arguments: [Int64(0), -1, -1_500_000_000, -1_000_000_000, 1_500_000_000, 999_999_999,
                      fixedMtime, .min, .max, .min + 1, .max - 1])
    func conversion(_ nanos: Int64) {
        let t = Sys.timespec(nanos: nanos)
        #expect(t.tv_nsec >= 0 && t.tv_nsec < 1_000_000_000)
        #expect(Int128(t.tv_sec) * 1_000_000_000 + Int128(t.tv_nsec) == Int128(nanos))
    }

    @Test("a file with mtime -1.5 s is snapshotted with that time and restored with it", arguments: [false, true])
    func roundTrip(readOnly: Bool) async throws {
        try await withFixture { fx in
            let mtime: Int64 = -1_500_000_000
            try writeFile(fx.base + "/old", "from before 1970\n", mtimeNanos: mtime)
            let st = try lstatOf(fx.base + "/old")
            #expect(st.st_mtim.tv_sec == -2 && st.st_mtim.tv_nsec == 500_000_000, "the file system keeps the time")
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "old", version: "v1", baseDir: fx.base,
                                                                    files: [FileRequest("old", readOnly: readOnly)])).info
                #expect(info.files.map(\.mtimeNanos) == [mtime])
                _ = try await store.restore(RestoreRequest(name: "old", version: "v1", outputDir: fx.output()))
                #expect(mtimeNanos(try lstatOf(fx.output() + "/old")) == mtime)
                try expectRestored(info, in: fx.output(), store: fx)
            }
        }
    }

    @Test("setting an extreme time is a clean result, never a trap", arguments: [Int64.min, .max])
    func extremeTimes(_ nanos: Int64) async throws {
        try await withTempDir { dir in
            try writeFile(dir + "/f", "f\n")
            let fd = open(dir + "/f", O_RDONLY | O_CLOEXEC)
            defer { close(fd) }
            do {
                try Sys.futimens(fd, mtimeNanos: nanos, "f")
            } catch let e as SnapshotterError {
                #expect(!e.message.isEmpty)
            }
        }
    }

    @Test("A file from before 1970 with a fraction of a second restores with its mtime")
    func preEpochMtimeRestores() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/old", "x")
            try HostileNumbersTests.setTimes(fx.base + "/old", sec: -1, nsec: 500_000_000)
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "old", version: "1", baseDir: fx.base,
                                                                    files: [FileRequest("old")])).info
                #expect(info.files.first?.mtimeNanos == -500_000_000)
                _ = try await store.restore(RestoreRequest(name: "old", version: "1", outputDir: fx.output()))
                let st = try statOf(fx.output() + "/old")
                #expect(st.st_mtim.tv_sec == -1 && st.st_mtim.tv_nsec == 500_000_000)
            }
        }
    }
}
