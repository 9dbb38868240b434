import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// Percent-encodes everything but RFC 3986 unreserved characters.
package func percentEncode(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(b))
        default:
            out += "%" + String(b, radix: 16, uppercase: true).leftPadded(2)
        }
    }
    return out
}

extension String {
    package func leftPadded(_ width: Int, with c: Character = "0") -> String {
        count >= width ? self : String(repeating: c, count: width - count) + self
    }
}
