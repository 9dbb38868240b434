import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// Replays the fuzz seed corpora and every input a fuzz run ever crashed on
/// (Tests/fuzz/crashes/<target>/) through the same harness scripts/fuzz.sh
/// fuzzes: each must end without a trap.
@Suite("Fuzz corpora and past crashes")
struct FuzzRegressionTests {
    static let fuzzDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz").path

    static func inputs(_ kind: String, _ target: String) -> [String] {
        let dir = "\(fuzzDir)/\(kind)/\(target)"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.sorted().map { "\(dir)/\($0)" }
    }

    @Test("Every seed and every past crash runs through its target without a trap", arguments: FuzzHarness.targets)
    func replay(target: String) throws {
        let seeds = Self.inputs("corpus", target)
        #expect(!seeds.isEmpty, "no seed corpus for \(target) in \(Self.fuzzDir)/corpus")
        for path in seeds + Self.inputs("crashes", target) {
            #expect(FuzzHarness.run(target, try readFile(path)), "\(target) is not a fuzz target")
        }
    }
}
