// A child process for the tests of leases across processes and PID
// namespaces: runs one operation on a store and, at the first progress
// event of the given phase, writes "held" on stdout and waits for a line
// (or end of file) on stdin before going on; "done" when it succeeded.
//   snapshotter-testchild restore PHASE ROOT NAME VERSION OUT
//   snapshotter-testchild snapshot PHASE ROOT NAME VERSION BASE FILE...
import SnapshotterCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

func say(_ text: String) {
    let bytes = Array(text.utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { write(1, $0.baseAddress! + off, $0.count - off) }
        if n <= 0 { return }
        off += n
    }
}

func waitForLine() {
    var c: UInt8 = 0
    while read(0, &c, 1) == 1 && c != 0x0A {}
}

func fail(_ message: String) -> Never {
    let bytes = Array((message + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress!, $0.count) }
    exit(1)
}

let phases: [String: Phase] = ["storing": .storing, "committing": .committing, "fetching": .fetching,
                               "exporting": .exporting, "uploading": .uploading, "publishing": .publishing]
let args = CommandLine.arguments
guard args.count >= 7, let pause = phases[args[2]] else {
    fail("usage: snapshotter-testchild restore|snapshot PHASE ROOT NAME VERSION OUT|BASE [FILE...]")
}

let paused = Atomic<Bool>(false)
let hook: ProgressHandler = { e in
    if e.phase == pause && !paused.exchange(true, ordering: .relaxed) {
        say("held\n")
        waitForLine()
    }
    return true
}

do {
    var options = StoreOptions()
    options.gc.intervalSeconds = 0
    let store = try Snapshotter(root: args[3], options: options)
    switch args[1] {
    case "restore":
        _ = try await store.restore(RestoreRequest(name: args[4], version: args[5], outputDir: args[6]), progress: hook)
    case "snapshot":
        let files = args.dropFirst(7).map { FileRequest($0) }
        _ = try await store.snapshot(SnapshotRequest(name: args[4], version: args[5], baseDir: args[6], files: files), progress: hook)
    default:
        fail("unknown operation \(args[1])")
    }
    await store.close()
    say("done\n")
} catch {
    fail("\(error)")
}
