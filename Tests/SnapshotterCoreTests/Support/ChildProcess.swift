import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// The snapshotctl binary built beside the test bundle (same build
/// configuration), or under `.build/debug` of the repository.
func snapshotctlPath() throws -> String { try builtExecutable("snapshotctl") }

/// The lease tests' child (Tests/TestChild), found like snapshotctl.
func testChildPath() throws -> String { try builtExecutable("snapshotter-testchild") }

func builtExecutable(_ name: String) throws -> String {
    var candidates: [String] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The test bundle may be a directory (…/X.xctest/…) on some setups.
        for _ in 0..<3 {
            candidates.append(dir.appendingPathComponent(name).path)
            dir.deleteLastPathComponent()
        }
    }
    var repo = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { repo.deleteLastPathComponent() }
    candidates.append(repo.appendingPathComponent(".build/debug/" + name).path)
    for c in candidates where access(c, X_OK) == 0 { return c }
    throw TestError.setup("\(name) is not built (looked in \(candidates)); run `swift build` first")
}

/// A child process whose exit can be awaited and which can be killed.
/// Foundation's Process hands children a signal mask that blocks SIGTERM
/// (DRAGONFLY.md), so it is stopped with SIGKILL.
final class Child: Sendable {
    struct Exit: Sendable, CustomStringConvertible {
        var status: Int32
        var signaled: Bool
        var stderr: String
        var description: String { signaled ? "killed by signal \(status): \(stderr)" : "exit \(status): \(stderr)" }
    }

    let pid: Int32
    /// Kept so the process object outlives its termination handler.
    private let process: Process
    private let exit: AsyncStream<(Int32, Bool)>
    private let errPath: String

    /// With `talk`, the child's stdin and stdout are pipes to `send` and
    /// `readLine`.
    private let input: FileHandle?
    private let output: FileHandle?

    init(_ executable: String, _ arguments: [String], scratch: String, talk: Bool = false) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        errPath = scratch + "/stderr-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: errPath, contents: nil),
              let err = FileHandle(forWritingAtPath: errPath) else {
            throw TestError.setup("cannot create \(errPath)")
        }
        p.standardError = err
        if talk {
            let toChild = Pipe(), fromChild = Pipe()
            p.standardInput = toChild
            p.standardOutput = fromChild
            input = toChild.fileHandleForWriting
            output = fromChild.fileHandleForReading
        } else {
            p.standardOutput = FileHandle.nullDevice
            p.standardInput = FileHandle.nullDevice
            input = nil
            output = nil
        }
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

    /// Writes a line to the child's stdin.
    func send(_ line: String) throws {
        guard let input else { throw TestError.setup("the child was started without pipes") }
        try input.write(contentsOf: Array((line + "\n").utf8))
    }

    /// The next line the child writes on stdout, or nil at its end. Read
    /// on a thread of its own: it blocks.
    func readLine() async -> String? {
        guard let output else { return nil }
        return await withCheckedContinuation { c in
            Thread.detachNewThread {
                var line: [UInt8] = []
                while true {
                    let chunk = output.readData(ofLength: 1)
                    guard let b = chunk.first else { c.resume(returning: line.isEmpty ? nil : String(decoding: line, as: UTF8.self)); return }
                    if b == 0x0A { c.resume(returning: String(decoding: line, as: UTF8.self)); return }
                    line.append(b)
                }
            }
        }
    }

    /// The processes this one started (its direct children).
    var children: [Int32] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0) }
    }

    func wait() async -> Exit {
        for await (status, signaled) in exit {
            let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: errPath)
            return Exit(status: status, signaled: signaled, stderr: err)
        }
        return Exit(status: -1, signaled: false, stderr: "no exit status")
    }
}
