import CXXHash
import SnapshotterSystem

/// An XXH3-64 content digest. Its text form is `xxh3:` and the hash in
/// lowercase hex without leading zeros (Go's `%x`), which is also the name of
/// the content file.
public struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    /// Parses `xxh3:<hex>`; only the canonical form is accepted, so a
    /// hostile config cannot name one content file in two ways.
    public init(parsing text: String) throws {
        guard text.hasPrefix("xxh3:") else {
            throw SnapshotterError.invalid("digest \(text.debugDescription) is not of the form xxh3:<hex>")
        }
        try self.init(hex: String(text.dropFirst(5)))
    }

    /// Parses the hex part alone (a content file name).
    public init(hex: String) throws {
        guard !hex.isEmpty, hex.utf8.count <= 16,
              hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }),
              let v = UInt64(hex, radix: 16), String(v, radix: 16) == hex
        else {
            throw SnapshotterError.invalid("digest hex \(hex.debugDescription) is not canonical lowercase hex")
        }
        self.value = v
    }

    public var hex: String { String(value, radix: 16) }

    /// The length of `hex`.
    package var hexDigits: Int { Swift.max(1, (64 - value.leadingZeroBitCount + 3) / 4) }

    /// Appends `hex` as bytes, with no String made (a config of many files
    /// writes one per file).
    package func appendHex(to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { buffer in
            guard let base = buffer.baseAddress else { return }
            out.append(contentsOf: UnsafeBufferPointer(start: base, count: writeHex(to: base)))
        }
    }

    /// `hex` written at `out`, which has room for 16 bytes; returns how many.
    package func writeHex(to out: UnsafeMutablePointer<UInt8>) -> Int {
        var shift = Swift.max(0, (63 - value.leadingZeroBitCount) / 4 * 4)
        var n = 0
        while true {
            let nibble = UInt8(truncatingIfNeeded: value >> UInt64(shift)) & 0xf
            out[n] = nibble < 10 ? 0x30 + nibble : 0x57 + nibble
            n += 1
            if shift == 0 { return n }
            shift -= 4
        }
    }
    public var description: String { "xxh3:" + hex }

    public static func < (a: Digest, b: Digest) -> Bool { a.value < b.value }
}

/// Streaming XXH3-64 (seed 0) through libxxhash's AVX2 dispatch entry point.
package final class XXH3Hasher {
    /// Allocated here, zeroed as XXH3_INITSTATE leaves a state its user
    /// declares (XXH3_createState can only fail, when malloc does).
    private let memory: UnsafeMutableRawPointer
    private let state: OpaquePointer

    package init() {
        let size = Int(cxxhash_xxh3_state_size())
        memory = .allocate(byteCount: size, alignment: Int(cxxhash_xxh3_state_alignment()))
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        state = OpaquePointer(memory)
        XXH3_64bits_reset(state)
    }

    deinit { memory.deallocate() }

    package func reset() { XXH3_64bits_reset(state) }

    @inline(__always)
    package func update(_ ptr: UnsafeRawPointer, _ count: Int) {
        if count > 0 { XXH3_64bits_update_dispatch(state, ptr, count) }
    }

    package func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0.baseAddress!, $0.count) }
    }

    package var digest: Digest { Digest(XXH3_64bits_digest(state)) }

    package static func hash(_ bytes: [UInt8]) -> Digest {
        bytes.withUnsafeBytes { Digest(XXH3_64bits_dispatch($0.baseAddress, $0.count)) }
    }
}
