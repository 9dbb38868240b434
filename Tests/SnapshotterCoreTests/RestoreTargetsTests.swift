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

/// The compact targets of a restore give back each file's normalised
/// directory and name; the spread order of its workers hands out every
/// index once, with the calls running at once in different lanes.
@Suite("Restore targets")
struct RestoreTargetsTests {
    static func file(_ path: String) -> SnapshotFile {
        SnapshotFile(relativePath: path, digest: Digest(1), readOnly: true, mode: 0o444, uid: 0, gid: 0, size: 1, mtimeNanos: 0)
    }

    @Test("targets keep each directory once and give the normalised name, also of paths not in normal form")
    func targetsNormalise() async throws {
        try await withTempDir { dir in
            let files = ["a//b/./c", "top", "a/b/d", "./x/../e", "a/b/f/."].map(Self.file)
            try writeFile(dir + "/out/a/b/d", "there\n")
            let output = try OutputDirectory(opening: dir + "/out", durable: false)
            let key = SnapshotKey(name: "t", version: "1")
            let targets = try RestoreTargets(key, files: FileList(files), output: output, overwrite: true)
            let got = files.indices.map { targets.target($0, files[$0]) }
            #expect(got.map(\.dir) == ["a/b", "", "a/b", "", "a/b"])
            #expect(got.map(\.name) == ["c", "top", "d", "e", "f"])
            #expect(got.map(\.wasAbsent) == [true, true, false, true, true])
            #expect(got.allSatisfy { $0.storeLink == .unchecked })
            #expect(targets.dirs.sorted() == ["", "a/b"])
            targets.setStoreLink(2, .usable)
            #expect(targets.target(2, files[2]).storeLink == .usable)
            await expectError(.alreadyExists) { try RestoreTargets(key, files: FileList(files), output: output, overwrite: false) }
        }
    }

    @Test("the spread order hands out every index once; consecutive claims fall in different lanes",
          arguments: [0, 1, 2, 5, 7, 16, 101])
    func laneOrder(count: Int) {
        for lanes in 1...5 {
            let order = LaneOrder(count: count, lanes: lanes)
            let claimed = (0..<order.claims).map(order.index).filter { $0 < count }
            #expect(claimed.sorted() == Array(0..<count), "count \(count), lanes \(lanes)")
            let laneOf = { (i: Int) in i / max(1, order.laneLength) }
            for n in 0..<max(0, order.claims - lanes) where count >= lanes * 2 {
                let window = Set((n..<n + lanes).map { laneOf(order.index($0)) })
                #expect(window.count == lanes, "claims \(n)..<\(n + lanes) share a lane (count \(count), lanes \(lanes))")
            }
        }
    }
}
