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

/// Content damaged in the store after it was written: a restore refuses it
/// and leaves nothing behind.
@Suite("Corrupted content")
struct CorruptedContentTests {
    /// Offsets into the content file of one 3 MiB extent (header 20 bytes,
    /// extent header 16 bytes, then data).
    static let flips: [Int] = [7, 27, 36, 36 + (1 << 20) + 17, 36 + 3 << 20 - 1]

    @Test("restore of a content file with one flipped byte fails with .corrupt and leaves nothing", arguments: flips)
    func flippedByteIsCaught(at offset: Int) async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/model.bin", patternBytes(3 << 20, seed: 99))
            try writeFile(fx.base + "/other.txt", "unrelated\n")
            try await withStore(fx) { store in
                let info = try await store.snapshot(SnapshotRequest(name: "corrupt", version: "v1", baseDir: fx.base,
                                                                    files: [FileRequest("model.bin"), FileRequest("other.txt")])).info
                let digest = try #require(info.files.first { $0.relativePath == "model.bin" }?.digest)
                let content = fx.contentDir + "/" + digest.hex
                #expect(try statOf(content).st_size == 36 + 3 << 20)
                var bytes = try readFile(content)
                bytes[offset] ^= 0x01
                try posix("unlink") { unlink(content) }
                try writeFile(content, bytes, mode: 0o444)

                let out = fx.output()
                let e = await expectError(.corrupt) {
                    try await store.restore(RestoreRequest(name: "corrupt", version: "v1", outputDir: out))
                }
                #expect(e?.message.contains("model.bin") == true, "the error names the file")
                #expect(!exists(out + "/model.bin"), "nothing under the final name")
                #expect(try allFiles(under: out).filter { $0 != "other.txt" } == [], "no temporary file is left")
                let problems = try await store.verify().problems
                #expect(problems.map(\.kind) == [.corruptContent])
                #expect(problems.first?.digest == digest)
            }
        }
    }
}
