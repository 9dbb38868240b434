#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem

/// Keeps every relative path of a snapshot inside its directory
/// (FORMAT.md section 7): the config may come from a registry someone else
/// writes to, so restore checks as hard as snapshot.
package enum PathGuard {
    /// Lexically validates and normalises a relative path: no absolute paths,
    /// no NUL, no `..` that climbs out, nothing empty. Returns the clean
    /// form (`a/./b//c` becomes `a/b/c`).
    package static func normalize(_ path: String) throws -> String {
        if isNormal(path) { return path }
        guard !path.isEmpty else { throw SnapshotterError.invalid("relative path is empty") }
        guard !path.hasPrefix("/") else {
            throw SnapshotterError.invalid("relative path \(path.debugDescription) is absolute")
        }
        guard !path.utf8.contains(0) else {
            throw SnapshotterError.invalid("relative path \(path.debugDescription) contains a NUL byte")
        }
        guard path.utf8.count <= 4096 else {
            throw SnapshotterError.invalid("relative path is longer than 4096 bytes")
        }
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..":
                if parts.isEmpty {
                    throw SnapshotterError.invalid("relative path \(path.debugDescription) escapes its directory")
                }
                parts.removeLast()
            default:
                guard part.utf8.count <= 255 else {
                    throw SnapshotterError.invalid("relative path \(path.debugDescription) has a component longer than 255 bytes")
                }
                parts.append(part)
            }
        }
        guard !parts.isEmpty else {
            throw SnapshotterError.invalid("relative path \(path.debugDescription) names the directory itself")
        }
        return parts.joined(separator: "/")
    }

    /// The order of paths in a snapshot record and its config: by their
    /// UTF-8 bytes, as Go sorts strings (not Swift's Unicode order).
    @inlinable package static func precedes<A: StringProtocol, B: StringProtocol>(_ a: A, _ b: B) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// The same order for two Strings, by memcmp of their bytes where both
    /// are contiguous (always, for native strings): the sorts and order
    /// checks of a snapshot of many files spend their time here.
    package static func precedes(_ a: String, _ b: String) -> Bool {
        withBytes(a) { x in withBytes(b) { y in precedes(x, y) } }
    }

    /// The same order on bytes.
    package static func precedes(_ x: UnsafeBufferPointer<UInt8>, _ y: UnsafeBufferPointer<UInt8>) -> Bool {
        let common = Swift.min(x.count, y.count)
        guard common > 0, let xs = x.baseAddress, let ys = y.baseAddress else { return x.count < y.count }
        let c = memcmp(xs, ys, common)
        return c != 0 ? c < 0 : x.count < y.count
    }

    /// Whether two paths are the same bytes (not Unicode's equality): one
    /// memcmp of equal lengths (PathKey's `==` in the restore's tables).
    package static func same(_ a: String, _ b: String) -> Bool {
        withBytes(a) { x in
            withBytes(b) { y in
                guard x.count == y.count else { return false }
                guard let xs = x.baseAddress, let ys = y.baseAddress else { return true }
                return memcmp(xs, ys, x.count) == 0
            }
        }
    }

    /// `body` on a path's UTF-8 bytes, in place for a native String. Paths
    /// are compared as bytes: String's `==` and hashing are Unicode's, for
    /// which "é" and "e" + U+0301 are one path, where the filesystem has two.
    @inline(__always)
    package static func withBytes<R>(_ s: String, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        if let r = try s.utf8.withContiguousStorageIfAvailable(body) { return r }
        return try Array(s.utf8).withUnsafeBufferPointer(body)
    }

    /// A path `normalize` would return unchanged, found in one pass over
    /// its bytes with no allocation (the common case, at many files): not
    /// empty, at most 4096 bytes, no NUL, and every component between
    /// single slashes 1 to 255 bytes and neither `.` nor `..`.
    package static func isNormal(_ path: String) -> Bool {
        var length = 0
        var component = 0
        var dots = 0
        for b in path.utf8 {
            length += 1
            if b == UInt8(ascii: "/") {
                if component == 0 || dots == component && component <= 2 { return false }
                component = 0
                dots = 0
                continue
            }
            if b == 0 { return false }
            component += 1
            if b == UInt8(ascii: ".") { dots += 1 }
            if component > 255 { return false }
        }
        return length > 0 && length <= 4096 && component > 0 && !(dots == component && component <= 2)
    }

    /// Checks that `relative` (already normalised) resolves inside `base`
    /// (a realpath) following symlinks that exist on the way. Components that
    /// do not exist yet are fine: they will be created as directories.
    /// Without `followFinal`, the last component itself is not followed
    /// (restore replaces it; it never writes through it).
    package static func checkInside(base: String, relative: String, followFinal: Bool) throws {
        var none = Set<String>()
        try checkInside(base: base, relative: relative, followFinal: followFinal, knownDirectories: &none)
    }

    /// The same, remembering in `knownDirectories` the relative directory
    /// prefixes already found to be plain directories inside `base`, so
    /// many files of one directory cost one check of it.
    /// Returns the final component's lstat when it exists and is not a
    /// symlink (so a caller that needs it saves a system call).
    @discardableResult
    package static func checkInside(base: String, relative: String, followFinal: Bool, knownDirectories: inout Set<String>) throws -> FileStat? {
        let parts = relative.split(separator: "/")
        var current = base
        var start = 0
        // Skip the longest parent prefix already known to be safe.
        if parts.count > 1 {
            for n in stride(from: parts.count - 1, through: 1, by: -1) {
                let prefix = parts[0..<n].joined(separator: "/")
                if knownDirectories.contains(prefix) {
                    current = base + "/" + prefix
                    start = n
                    break
                }
            }
        }
        for (i, part) in parts.enumerated() where i >= start {
            let next = Paths.join(current, String(part))
            let isLast = i == parts.count - 1
            guard let st = try Sys.lstatIfExists(next) else { return nil }
            if (st.st_mode & S_IFMT) == S_IFLNK {
                if isLast && !followFinal { return nil }
                let resolved: String
                do {
                    resolved = try Sys.realpath(next)
                } catch {
                    throw SnapshotterError.invalid("path \(relative.debugDescription) goes through a symlink at \(next) that does not resolve")
                }
                guard resolved == base || resolved.hasPrefix(base == "/" ? "/" : base + "/") else {
                    throw SnapshotterError.invalid("path \(relative.debugDescription) goes through a symlink at \(next) that leaves \(base)")
                }
                current = resolved
            } else {
                current = next
                if isLast { return st }
                if (st.st_mode & S_IFMT) == S_IFDIR && current == base + "/" + parts[0...i].joined(separator: "/") {
                    knownDirectories.insert(parts[0...i].joined(separator: "/"))
                }
            }
        }
        return nil
    }
}

/// Names and versions must be usable as OCI repository components and tags.
public enum Naming {
    /// OCI tag grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
    public static func validateVersion(_ version: String) throws {
        let bytes = Array(version.utf8)
        guard !bytes.isEmpty, bytes.count <= 128,
              isAlnum(bytes[0]) || bytes[0] == UInt8(ascii: "_"),
              bytes.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else {
            throw SnapshotterError.invalid("version \(version.debugDescription) is not a valid OCI tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})")
        }
    }

    /// OCI repository path components, lowercase:
    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, joined by `/`; 255 bytes at most.
    public static func validateName(_ name: String) throws {
        let bytes = Array(name.utf8)
        func fail() -> SnapshotterError {
            SnapshotterError.invalid("name \(name.debugDescription) is not a valid OCI repository name (lowercase [a-z0-9] components separated by '.', '_', '__', '-' or '/')")
        }
        guard !bytes.isEmpty, bytes.count <= 255 else { throw fail() }
        for component in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            guard let first = component.first, let last = component.last,
                  isLowerAlnum(first), isLowerAlnum(last) else { throw fail() }
            var i = component.startIndex
            while i < component.endIndex {
                let c = component[i]
                if isLowerAlnum(c) { i += 1; continue }
                // A separator run: '.', '_', '__' or one or more '-'.
                var j = i
                while j < component.endIndex && !isLowerAlnum(component[j]) { j += 1 }
                let sep = component[i..<j]
                let ok = sep.elementsEqual([UInt8(ascii: ".")]) || sep.elementsEqual([UInt8(ascii: "_")])
                    || sep.elementsEqual([UInt8(ascii: "_"), UInt8(ascii: "_")])
                    || sep.allSatisfy { $0 == UInt8(ascii: "-") }
                guard ok else { throw fail() }
                i = j
            }
        }
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
    }

    private static func isLowerAlnum(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a)
    }
}

/// A path as a dictionary or set key, equal and hashed by its bytes:
/// String's own `==` and hashing are Unicode's, which would take the
/// directories "é" and "e" + U+0301 for one.
package struct PathKey: Hashable, Sendable {
    package let path: String

    package init(_ path: String) { self.path = path }

    package static func == (a: PathKey, b: PathKey) -> Bool { PathGuard.same(a.path, b.path) }

    package func hash(into hasher: inout Hasher) {
        PathGuard.withBytes(path) { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
