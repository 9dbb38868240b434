#if canImport(Glibc)
import Glibc
#endif

extension Sys {
    /// A procfs file, read to its end (procfs files have no size).
    package static func readProcFile(_ path: String) throws -> [UInt8] {
        let fd = try open(path, O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try chunk.withUnsafeMutableBytes { b -> Int in
                guard let base = b.baseAddress else { return 0 }
                return try read(fd, base, b.count, path)
            }
            if n == 0 { return out }
            out += chunk[0..<n]
        }
    }
}
