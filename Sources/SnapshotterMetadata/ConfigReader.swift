import SnapshotterSystem
import SnapshotterStore
/// Reads a snapshot config straight from its bytes, one file entry at a
/// time, without a JSON tree of the whole document (a config of a million
/// files would otherwise cost gigabytes). Each entry is handed over as a
/// small object holding only the members the decoder uses; unknown members
/// are parsed (so malformed JSON is still refused) and dropped.
package struct ConfigReader {
    private var p: JSONParser
    package static let entryKeys: Set<String> = ["relativePath", "digest", "readOnly", "metadata"]
    package static let metadataKeys: Set<String> = ["mode", "uid", "gid", "size", "mtime", "typeflag"]

    package init(_ bytes: [UInt8]) { p = JSONParser(bytes: bytes, maxDepth: 64) }

    /// Calls `body` with each entry of `"files"` in order; the number of
    /// entries, or nil when `"files"` is null.
    package mutating func forEachFile(_ body: (Int, JSONValue) throws -> Void) throws -> Int? {
        p.skipSpace()
        guard p.peek == UInt8(ascii: "{") else { throw SnapshotterError.invalid("snapshot config is not a JSON object") }
        var first = true
        var count: Int?? = .none
        while let key = try p.nextMember(&first) {
            guard key == "files" else { _ = try p.value(depth: 1); continue }
            guard count == nil else { throw SnapshotterError.invalid("snapshot config has \"files\" twice") }
            count = .some(try files(body))
        }
        p.skipSpace()
        guard p.i == p.bytes.count else { throw p.error("trailing characters") }
        guard let count else { throw SnapshotterError.invalid("snapshot config has no \"files\"") }
        return count
    }

    private mutating func files(_ body: (Int, JSONValue) throws -> Void) throws -> Int? {
        p.skipSpace()
        if p.peek == UInt8(ascii: "n") { _ = try p.value(depth: 1); return nil }
        guard p.peek == UInt8(ascii: "[") else { throw SnapshotterError.invalid("snapshot config \"files\" is not an array") }
        var first = true
        var n = 0
        while try p.nextElement(&first) {
            try body(n, try entry())
            n += 1
        }
        return n
    }

    /// One entry, keeping only the members in `entryKeys` (and in
    /// `metadataKeys` inside `"metadata"`); later duplicates win.
    private mutating func entry() throws -> JSONValue {
        guard p.peek == UInt8(ascii: "{") else { return try p.value(depth: 2) }
        var members: [(String, JSONValue)] = []
        var first = true
        while let key = try p.nextMember(&first) {
            guard Self.entryKeys.contains(key) else { _ = try p.value(depth: 3); continue }
            if key == "metadata" && p.peek == UInt8(ascii: "{") {
                var meta: [(String, JSONValue)] = []
                var firstMeta = true
                while let mk = try p.nextMember(&firstMeta) {
                    let v = try p.value(depth: 4)
                    if Self.metadataKeys.contains(mk) { meta.append((mk, v)) }
                }
                members.append((key, .object(meta)))
            } else {
                members.append((key, try p.value(depth: 3)))
            }
        }
        return .object(members)
    }
}

extension JSONParser {
    package var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    /// Reads an object member by member: call with `first` true at the
    /// `{`; returns each member's name (positioned at its value), nil after
    /// the `}`.
    package mutating func nextMember(_ first: inout Bool) throws -> String? {
        skipSpace()
        if first {
            try expect("{")
            first = false
            skipSpace()
            if peek == UInt8(ascii: "}") { i += 1; return nil }
        } else {
            guard let c = peek else { throw error("unexpected end in object") }
            if c == UInt8(ascii: "}") { i += 1; return nil }
            guard c == UInt8(ascii: ",") else { throw error("expected ',' or '}'") }
            i += 1
            skipSpace()
        }
        guard peek == UInt8(ascii: "\"") else { throw error("expected a member name") }
        let key = try string()
        skipSpace()
        try expect(":")
        skipSpace()
        return key
    }

    /// Reads an array element by element: call with `first` true at the
    /// `[`; true when positioned at the next element, false after the `]`.
    package mutating func nextElement(_ first: inout Bool) throws -> Bool {
        skipSpace()
        if first {
            try expect("[")
            first = false
            skipSpace()
            if peek == UInt8(ascii: "]") { i += 1; return false }
            return true
        }
        guard let c = peek else { throw error("unexpected end in array") }
        if c == UInt8(ascii: "]") { i += 1; return false }
        guard c == UInt8(ascii: ",") else { throw error("expected ',' or ']'") }
        i += 1
        skipSpace()
        return true
    }
}
