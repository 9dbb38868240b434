import SnapshotterCore
#if canImport(Glibc)
import Glibc
#endif

// libFuzzer entry point, linked by scripts/fuzz.sh with
// -sanitize=fuzzer,address (libFuzzer supplies main). FUZZ_TARGET picks the
// parser (FuzzHarness.targets).
nonisolated(unsafe) private var target: String?

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    if target == nil {
        guard let t = getenv("FUZZ_TARGET").map({ String(cString: $0) }), FuzzHarness.targets.contains(t) else {
            let text = "set FUZZ_TARGET to one of: \(FuzzHarness.targets.joined(separator: " "))\n"
            _ = text.withCString { write(2, $0, strlen($0)) }
            exit(2)
        }
        target = t
    }
    FuzzHarness.run(target ?? "", size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : [])
    return 0
}
