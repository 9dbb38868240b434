#if canImport(Glibc)
import Glibc
#endif
import CShim
import SnapshotterSystem
import SnapshotterMetadata

extension Snapshotter {
    /// What the listed files are now, one fstatat each (AT_SYMLINK_NOFOLLOW:
    /// no FIFO, device or socket is touched, a symlink is seen as one)
    /// below an O_PATH descriptor of its directory. The directory is opened
    /// below the base once for the run of files in it (the list is sorted),
    /// never following a symlink, so no path is walked per file. O_PATH
    /// needs search permission only, as lookups by path did. Used by one
    /// thread at a time.
    final class ListedDirectories {
        private let base: Int32
        private let key: SnapshotKey
        private var dir = ""
        private var dirFD: Int32 = -1

        init(base: Int32, key: SnapshotKey) {
            self.base = base
            self.key = key
        }

        deinit { if dirFD >= 0 { Sys.close(dirFD) } }

        /// The stat of `relative` (normalized); anything but a regular file,
        /// or a symlink on the way, is refused naming the file.
        func stat(_ relative: String) throws -> FileStat {
            let key = self.key
            func what() -> String { "snapshot \(key): file \(relative)" }
            let slash = relative.utf8.lastIndex(of: UInt8(ascii: "/"))
            var at = base
            var name = relative
            if let slash {
                let parent = relative.utf8[..<slash]
                if dirFD < 0 || !parent.elementsEqual(dir.utf8) {
                    if dirFD >= 0 { Sys.close(dirFD) }
                    dirFD = -1
                    dir = String(relative[..<slash])
                    dirFD = try Sys.openBeneath(base, dir, cshim_o_path() | O_DIRECTORY, what: what())
                }
                at = dirFD
                name = String(relative[relative.utf8.index(after: slash)...])
            }
            guard let st = try Sys.statAt(at, name, what: what()) else { throw SnapshotterError.errno(ENOENT, what()) }
            try requireRegularFile(st, what())
            return st
        }
    }
}
