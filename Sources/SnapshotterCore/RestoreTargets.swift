#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// Where each file of a restore goes, kept small (9 bytes a file): the index of its directory (each directory's path kept once),
/// whether nothing was at its name, and what the check of its store link
/// found. The name is taken again from the recorded path at export; only
/// paths not in normal form keep theirs.
final class RestoreTargets: @unchecked Sendable {
    private struct Entry {
        var dir: UInt32
        var wasAbsent: Bool
    }

    /// Each directory of a target once, relative to the output root.
    let dirs: [String]
    /// Whether each of `dirs` was there when the restore was prepared.
    private let dirExisted: [Bool]
    private let entries: [Entry]
    /// Names of files whose recorded path is not in normal form, by index.
    private let odd: [Int: String]
    /// `OutputDirectory.StoreLink` of each file. Each slot is written by one
    /// worker of the content check, which ends before any export reads it
    /// (hence @unchecked Sendable).
    private let links: UnsafeMutableBufferPointer<UInt8>

    /// Checks that no directory on the way is a symlink or a file and that
    /// no target is a directory, or (unless overwriting) anything at all.
    init(_ key: SnapshotKey, files: FileList, output: OutputDirectory, overwrite: Bool) throws {
        guard UInt32(exactly: files.count) != nil else {
            throw SnapshotterError.invalid("restore \(key): more than \(UInt32.max) files")
        }
        var index: [PathKey: UInt32] = [:]
        var dirs: [String] = [], existed: [Bool] = [], entries: [Entry] = [], odd: [Int: String] = [:]
        entries.reserveCapacity(files.count)
        var last: (dir: String, index: UInt32)?
        for i in files.indices {
            let f = files[i]
            let rel = try PathGuard.normalize(f.relativePath)
            let slash = rel.utf8.lastIndex(of: UInt8(ascii: "/"))
            let name = slash.map { rel[rel.index(after: $0)...] } ?? rel[...]
            let dirPart = slash.map { rel[..<$0] } ?? ""
            if rel != f.relativePath { odd[i] = String(name) }
            let d: UInt32
            // Directories by their bytes, as on disk (PathKey).
            if let last, last.dir.utf8.elementsEqual(dirPart.utf8) { d = last.index } else {
                let dir = String(dirPart)
                if let known = index[PathKey(dir)] { d = known } else {
                    guard let next = UInt32(exactly: dirs.count) else {
                        throw SnapshotterError.invalid("restore \(key): more than \(UInt32.max) directories")
                    }
                    do { existed.append(try output.directoryExists(dir)) } catch let e as SnapshotterError {
                        throw e.context("restore \(key): \(f.relativePath)")
                    }
                    d = next
                    dirs.append(dir)
                    index[PathKey(dir)] = d
                }
                last = (dirs[Int(d)], d)
            }
            var wasAbsent = true
            if existed[Int(d)], case let t = OutputDirectory.Target(dir: dirs[Int(d)], name: String(name), wasAbsent: true),
               let st = try output.stat(t) {
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    throw SnapshotterError(.alreadyExists, "restore \(key): \(output.display(t)) exists and is a directory")
                }
                if !overwrite {
                    throw SnapshotterError(.alreadyExists, "restore \(key): \(output.display(t)) already exists (ask to overwrite to replace it)")
                }
                wasAbsent = false
            }
            entries.append(Entry(dir: d, wasAbsent: wasAbsent))
        }
        self.dirs = dirs
        dirExisted = existed
        self.entries = entries
        self.odd = odd
        links = .allocate(capacity: files.count)
        links.initialize(repeating: OutputDirectory.StoreLink.unchecked.rawValue)
    }

    deinit { links.deallocate() }

    /// The target of file `i`, `f`.
    func target(_ i: Int, _ f: SnapshotFile) -> OutputDirectory.Target {
        let e = entries[i]
        let name: String
        if !odd.isEmpty, let n = odd[i] {
            name = n
        } else if let slash = f.relativePath.utf8.lastIndex(of: UInt8(ascii: "/")) {
            name = String(f.relativePath[f.relativePath.index(after: slash)...])
        } else {
            name = f.relativePath
        }
        return OutputDirectory.Target(dir: dirs[Int(e.dir)], name: name, wasAbsent: e.wasAbsent,
                                      storeLink: OutputDirectory.StoreLink(rawValue: links[i]) ?? .unchecked, index: UInt32(truncatingIfNeeded: i))
    }

    /// Records what the check of file `i`'s store link found; only the one
    /// worker checking `i` calls this, before the export.
    func setStoreLink(_ i: Int, _ link: OutputDirectory.StoreLink) { links[i] = link.rawValue }

    /// Removes stale temporary files from the directories that were there
    /// and makes the others, parents first.
    func makeDirectories(in output: OutputDirectory) throws {
        for d in dirs.indices.sorted(by: { PathGuard.precedes(dirs[$0], dirs[$1]) }) {
            if dirExisted[d] { try output.sweepStaleTemps(in: dirs[d]) } else { try output.makeDirectory(dirs[d]) }
        }
    }
}
