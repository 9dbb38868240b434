import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// The snapshotctl binary built beside the test bundle (same build
/// configuration), or under `.build/debug` of the repository.
func snapshotctlPath() throws -> String {
    var candidates: [String] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The test bundle may be a directory (…/X.xctest/…) on some setups.
        for _ in 0..<3 {
            candidates.append(dir.appendingPathComponent("snapshotctl").path)
            dir.deleteLastPathComponent()
        }
    }
    var repo = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { repo.deleteLastPathComponent() }
    candidates.append(repo.appendingPathComponent(".build/debug/snapshotctl").path)
    for c in candidates where access(c, X_OK) == 0 { return c }
    throw TestError.setup("snapshotctl is not built (looked in \(candidates)); run `swift build` first")
}

/// A child process whose exit can be awaited and which can be killed.
/// Foundation's Process hands children a signal mask that blocks SIGTERM
/// (DRAGONFLY.md), so it is stopped with SIGKILL.
final class Child: Sendable {
    struct Exit: Sendable, CustomStringConvertible {
        var status: Int32
        var signaled: Bool
        var stderr: String
        var description: String { signaled ? "killed by signal \(status)" : "exit \(status): \(stderr)" }
    }

    let pid: Int32
    /// Kept so the process object outlives its termination handler.
    private let process: Process
    private let exit: AsyncStream<(Int32, Bool)>
    private let errPath: String

    init(_ executable: String, _ arguments: [String], scratch: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        errPath = scratch + "/stderr-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: errPath, contents: nil),
              let err = FileHandle(forWritingAtPath: errPath) else {
            throw TestError.setup("cannot create \(errPath)")
        }
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        let (stream, continuation) = AsyncStream<(Int32, Bool)>.makeStream()
        exit = stream
        p.terminationHandler = { p in
            continuation.yield((p.terminationStatus, p.terminationReason == .uncaughtSignal))
            continuation.finish()
        }
        try p.run()
        try err.close()
        pid = p.processIdentifier
        process = p
    }

    func kill() { _ = Glibc.kill(pid, SIGKILL) }

    func wait() async -> Exit {
        for await (status, signaled) in exit {
            let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: errPath)
            return Exit(status: status, signaled: signaled, stderr: err)
        }
        return Exit(status: -1, signaled: false, stderr: "no exit status")
    }
}
