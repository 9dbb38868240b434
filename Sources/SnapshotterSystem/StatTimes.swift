#if canImport(Glibc)
import Glibc
#endif

extension Sys {
    /// The inode change time: any write, chmod, chown, link count or
    /// utimensat change moves it, and no caller can set it back.
    package static func ctimeNanos(_ st: FileStat) -> Int64 {
        Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
    }
}
