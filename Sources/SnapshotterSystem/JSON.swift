/// A small JSON reader and writer. Input is treated as hostile: nesting
/// depth and size are bounded, and every error says where it happened.
/// (The engine avoids Foundation so the shared library stays small.)
package enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// The number's text as written; converted on use.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    package static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    package subscript(key: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        return members.last(where: { $0.0 == key })?.1
    }

    package var stringValue: String? { if case let .string(s) = self { return s } else { return nil } }
    package var boolValue: Bool? { if case let .bool(b) = self { return b } else { return nil } }
    package var arrayValue: [JSONValue]? { if case let .array(a) = self { return a } else { return nil } }
    package var isNull: Bool { if case .null = self { return true } else { return false } }
    package var int64Value: Int64? { if case let .number(n) = self { return Int64(n) } else { return nil } }
    package var uint64Value: UInt64? { if case let .number(n) = self { return UInt64(n) } else { return nil } }
    /// Any JSON number (integer, fraction or exponent) as a Double.
    package var doubleValue: Double? { if case let .number(n) = self { return Double(n) } else { return nil } }
    /// The number's text (for error messages).
    package var numberText: String? { if case let .number(n) = self { return n } else { return nil } }

    package static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws -> JSONValue {
        var p = JSONParser(bytes: bytes, maxDepth: maxDepth)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw p.error("trailing characters") }
        return v
    }
}

package struct JSONParser {
    package let bytes: [UInt8]
    package let maxDepth: Int
    package var i = 0

    package init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    package func error(_ what: String) -> SnapshotterError {
        SnapshotterError.invalid("malformed JSON at byte \(i): \(what)")
    }

    package mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0a || bytes[i] == 0x0d || bytes[i] == 0x09 { i += 1 }
    }

    package mutating func expect(_ literal: String) throws {
        for c in literal.utf8 {
            guard i < bytes.count, bytes[i] == c else { throw error("expected \(literal)") }
            i += 1
        }
    }

    package mutating func value(depth: Int) throws -> JSONValue {
        guard depth <= maxDepth else { throw error("nested deeper than \(maxDepth)") }
        guard i < bytes.count else { throw error("unexpected end") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1
            var members: [(String, JSONValue)] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let key = try string()
                skipSpace()
                try expect(":")
                skipSpace()
                members.append((key, try value(depth: depth + 1)))
                skipSpace()
                guard i < bytes.count else { throw error("unexpected end in object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw error("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [JSONValue] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard i < bytes.count else { throw error("unexpected end in array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw error("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default:
            return .number(try number())
        }
    }

    package mutating func number() throws -> String {
        let start = i
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        var digits = 0
        while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1; digits += 1 }
        guard digits > 0 else { throw error("expected a value") }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            var frac = 0
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1; frac += 1 }
            guard frac > 0 else { throw error("bad number") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            var exp = 0
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1; exp += 1 }
            guard exp > 0 else { throw error("bad number") }
        }
        guard i - start <= 64 else { throw error("number too long") }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }

    package mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            default: throw error("bad \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    package mutating func string() throws -> String {
        i += 1
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw error("unterminated string") }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            if c < 0x20 { throw error("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < bytes.count else { throw error("unterminated escape") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5c)
            case UInt8(ascii: "/"): out.append(0x2f)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0c)
            case UInt8(ascii: "n"): out.append(0x0a)
            case UInt8(ascii: "r"): out.append(0x0d)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    if i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        let low = try hex4()
                        if (0xDC00...0xDFFF).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            scalar = 0xFFFD
                        }
                    } else {
                        scalar = 0xFFFD
                    }
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    scalar = 0xFFFD
                }
                out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8))
            default: throw error("bad escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw error("invalid UTF-8 in string") }
        return s
    }
}

/// Decimal digits appended as bytes, with no String made on the way (a
/// config writes several numbers for each of a snapshot's files).
package enum DecimalText {
    /// The bytes `append` writes for `v` with no padding.
    package static func length(_ v: Int64) -> Int {
        var digits = 1
        var rest = v.magnitude
        while rest >= 10 { rest /= 10; digits += 1 }
        return digits + (v < 0 ? 1 : 0)
    }

    /// `v` as `String(v)` writes it, left-padded with "0" to `width` bytes.
    package static func append(_ v: Int64, width: Int = 0, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Swift.max(room, width)) { buffer in
            guard let base = buffer.baseAddress else { return }
            out.append(contentsOf: UnsafeBufferPointer(start: base, count: write(v, width: width, to: base)))
        }
    }

    /// The bytes `write` may need with a width of at most this.
    package static let room = 21

    /// `append`'s bytes written at `out`, which has room for
    /// `max(room, width)` bytes; returns how many.
    @inline(__always)
    package static func write(_ v: Int64, width: Int = 0, to out: UnsafeMutablePointer<UInt8>) -> Int {
        // Digits from the last, into 20 bytes on the stack (UInt64.max has 20).
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        return withUnsafeMutableBytes(of: &digits) { raw in
            let d = raw.baseAddress.unsafelyUnwrapped.assumingMemoryBound(to: UInt8.self)
            var first = 20
            var rest = v.magnitude
            repeat {
                first -= 1
                d[first] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            } while rest > 0
            var n = 0
            let length = 20 - first + (v < 0 ? 1 : 0)
            while n < width - length {
                out[n] = UInt8(ascii: "0")
                n += 1
            }
            if v < 0 {
                out[n] = UInt8(ascii: "-")
                n += 1
            }
            (out + n).update(from: d + first, count: 20 - first)
            return n + 20 - first
        }
    }
}

/// Writes JSON the way Go's encoding/json does (compact; `<`, `>`, `&`,
/// U+2028 and U+2029 escaped), so configs match the Go version's bytes.
package struct JSONWriter {
    package var bytes: [UInt8] = []

    /// An integer field's value.
    package mutating func number(_ v: Int64) { DecimalText.append(v, to: &bytes) }

    package mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }

    package mutating func raw(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Plain ASCII with nothing to escape: written byte for byte.
    static func isPlain(_ s: String) -> Bool {
        s.utf8.allSatisfy(isPlain)
    }

    /// The same for the bytes of a string.
    package static func isPlain(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        bytes.allSatisfy(isPlain)
    }

    @inline(__always)
    static func isPlain(_ b: UInt8) -> Bool {
        b >= 0x20 && b < 0x80 && b != 0x22 && b != 0x5c && b != 0x3c && b != 0x3e && b != 0x26
    }

    /// The bytes `string(s)` writes, quotes included.
    package static func encodedLength(_ s: String) -> Int {
        if isPlain(s) { return s.utf8.count + 2 }
        var w = JSONWriter()
        w.string(s)
        return w.bytes.count
    }

    package mutating func string(_ s: String) {
        if Self.isPlain(s) {
            bytes.append(0x22)
            bytes.append(contentsOf: s.utf8)
            bytes.append(0x22)
            return
        }
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        bytes.append(0x22)
        for scalar in s.unicodeScalars {
            let v = scalar.value
            switch v {
            case 0x22: raw("\\\"")
            case 0x5c: raw("\\\\")
            case 0x0a: raw("\\n")
            case 0x0d: raw("\\r")
            case 0x09: raw("\\t")
            case 0x3c, 0x3e, 0x26, 0x2028, 0x2029, 0..<0x20:
                raw("\\u")
                bytes.append(hex[Int(v >> 12 & 0xf)])
                bytes.append(hex[Int(v >> 8 & 0xf)])
                bytes.append(hex[Int(v >> 4 & 0xf)])
                bytes.append(hex[Int(v & 0xf)])
            default:
                bytes.append(contentsOf: String(scalar).utf8)
            }
        }
        bytes.append(0x22)
    }

    package init(bytes: [UInt8] = []) {
        self.bytes = bytes
    }
}
