import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// The protobuf wire format, as much of it as the daemon's messages need
/// (DaemonMessages): a writer that emits fields in the order it is called
/// (the caller calls in field-number order, leaving proto3 defaults out) and
/// a reader for hostile input that never traps and never allocates by a
/// length it read.
package enum ProtoWire {
    package enum WireType: UInt8, Sendable {
        case varint = 0, fixed64 = 1, bytes = 2, fixed32 = 5
    }

    /// A field a message declares: its number, its .proto name (for errors)
    /// and the wire type its type encodes as.
    package struct Field: Sendable {
        package let number: UInt64
        package let name: String
        package let wire: WireType
    }

    /// A message's declared fields, for the reader: a declared field with
    /// another wire type is refused; an undeclared one is skipped.
    package struct Schema: Sendable {
        package let name: String
        package let fields: [Field]

        package func field(_ number: UInt64) -> Field? { fields.first { $0.number == number } }
    }

    // MARK: writing

    package struct Writer {
        package var bytes: [UInt8] = []

        package mutating func varint(_ v: UInt64) {
            var v = v
            while v >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
                v >>= 7
            }
            bytes.append(UInt8(v))
        }

        package mutating func tag(_ field: UInt64, _ wire: WireType) { varint(field << 3 | UInt64(wire.rawValue)) }

        /// A uint64, bool or enum field; 0 is left out (proto3).
        package mutating func uint64(_ field: UInt64, _ v: UInt64) {
            guard v != 0 else { return }
            tag(field, .varint)
            varint(v)
        }

        /// An int64: negative values as ten-byte two's complement, as protobuf does.
        package mutating func int64(_ field: UInt64, _ v: Int64) { uint64(field, UInt64(bitPattern: v)) }

        package mutating func bool(_ field: UInt64, _ v: Bool) { uint64(field, v ? 1 : 0) }

        /// A string field; empty is left out unless `present` (a proto3
        /// `optional` field that is set).
        package mutating func string(_ field: UInt64, _ s: String, present: Bool = false) {
            guard present || !s.isEmpty else { return }
            tag(field, .bytes)
            varint(UInt64(s.utf8.count))
            bytes.append(contentsOf: s.utf8)
        }

        /// A message field, present even when its encoding is empty.
        package mutating func message(_ field: UInt64, _ encoded: [UInt8]) {
            tag(field, .bytes)
            varint(UInt64(encoded.count))
            bytes.append(contentsOf: encoded)
        }
    }

    // MARK: reading

    /// Reads the fields of one message in `buf[at..<end]`. Errors name the
    /// message (its path from the top-level message) and the field.
    package struct Reader {
        package let buf: UnsafeRawBufferPointer
        package let schema: Schema
        /// The top-level message and the fields leading here, for errors.
        package let path: String
        private(set) var at: Int
        package let end: Int

        package init(_ buf: UnsafeRawBufferPointer, _ schema: Schema) {
            self.init(buf, schema, path: schema.name, from: 0, to: buf.count)
        }

        private init(_ buf: UnsafeRawBufferPointer, _ schema: Schema, path: String, from: Int, to: Int) {
            self.buf = buf
            self.schema = schema
            self.path = path
            at = from
            end = to
        }

        package func error(_ problem: String) -> SnapshotterError {
            SnapshotterError(.transport, "the Dragonfly daemon sent a malformed \(path): \(problem)")
        }

        package func error(_ f: Field, _ problem: String) -> SnapshotterError {
            error("field \(f.number) (\(f.name)): \(problem)")
        }

        /// The next declared field (its value not yet read), skipping
        /// undeclared ones; nil at the end of the message.
        package mutating func next() throws -> Field? {
            while at < end {
                let tag = try varint { "a field tag: \($0)" }
                let number = tag >> 3
                let wireBits = UInt8(tag & 7)
                guard number != 0 else { throw error("field number 0") }
                guard number <= 0x1FFF_FFFF else { throw error("field number \(number) is out of range") }
                guard let wire = WireType(rawValue: wireBits) else {
                    let kind = wireBits == 3 || wireBits == 4 ? "group wire type \(wireBits) (not supported)" : "invalid wire type \(wireBits)"
                    throw error("field \(number): \(kind)")
                }
                if let f = schema.field(number) {
                    guard f.wire == wire else {
                        throw error(f, "wire type \(wireBits), expected \(f.wire.rawValue)")
                    }
                    return f
                }
                try skip(Field(number: number, name: "unknown", wire: wire))
            }
            return nil
        }

        /// Skips the value of field `f` (just returned by next()).
        package mutating func skip(_ f: Field) throws {
            let problem = { (p: String) in "field \(f.number) (\(f.name)): \(p)" }
            switch f.wire {
            case .varint: _ = try varint(problem)
            case .fixed64: try advance(8, problem)
            case .fixed32: try advance(4, problem)
            case .bytes: _ = try lengthDelimited(problem)
            }
        }

        /// A varint of at most 10 bytes whose value fits in 64 bits.
        private mutating func varint(_ problem: (String) -> String) throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard at < end else { throw error(problem("truncated varint")) }
                let b = buf[at]
                at += 1
                if shift == 63 && b > 1 {
                    throw error(problem(b & 0x80 != 0 ? "varint longer than 10 bytes" : "varint overflows 64 bits"))
                }
                value |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return value }
                shift += 7
            }
        }

        private mutating func advance(_ n: Int, _ problem: (String) -> String) throws {
            guard end - at >= n else { throw error(problem("\(n)-byte value past the end (\(end - at) bytes left)")) }
            at += n
        }

        /// A length-delimited value's range, checked against what remains.
        private mutating func lengthDelimited(_ problem: (String) -> String) throws -> Range<Int> {
            let n = try varint(problem)
            guard n <= UInt64(end - at) else {
                throw error(problem("length \(n) past the end (\(end - at) bytes left)"))
            }
            let start = at
            at += Int(n)
            return start..<at
        }

        /// The value of varint field `f` (just returned by next()).
        package mutating func varint(_ f: Field) throws -> UInt64 {
            try varint { "field \(f.number) (\(f.name)): \($0)" }
        }

        /// A reader of message field `f` (just returned by next()), bounded
        /// by its length.
        package mutating func message(_ f: Field, _ schema: Schema) throws -> Reader {
            let r = try lengthDelimited { "field \(f.number) (\(f.name)): \($0)" }
            return Reader(buf, schema, path: "\(path).\(f.name) (\(schema.name))", from: r.lowerBound, to: r.upperBound)
        }
    }
}
