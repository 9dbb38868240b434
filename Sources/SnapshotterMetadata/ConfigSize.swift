import SnapshotterSystem
import SnapshotterStore

/// The size of a canonical config, counted without writing it: a record of
/// version 1 reserves its config's bytes in LMDB before writing them there.
extension SnapshotConfig {
    /// Exactly the number of bytes `encode(sorted:)` writes for `files`.
    package static func encodedSize(sorted files: FileList) -> Int {
        let fixed = [Piece.digest, Piece.mode, Piece.uid, Piece.gid, Piece.size, Piece.mtime, Piece.typeflag, Piece.end]
            .reduce(0) { $0 + $1.utf8CodeUnitCount }
        var total = Piece.open.utf8CodeUnitCount + Piece.close.utf8CodeUnitCount + Swift.max(0, files.count - 1) * Piece.comma.utf8CodeUnitCount
        for i in files.indices {
            let f = files[i]
            total &+= fixed &+ f.digest.hexDigits &+ (f.readOnly ? Piece.readOnly : Piece.readWrite).utf8CodeUnitCount
                &+ JSONWriter.encodedLength(f.relativePath)
                &+ DecimalText.length(Int64(f.mode)) &+ DecimalText.length(Int64(f.uid)) &+ DecimalText.length(Int64(f.gid))
                &+ DecimalText.length(f.size) &+ RFC3339.length(nanos: f.mtimeNanos) &+ DecimalText.length(Int64(f.typeflag))
        }
        return total
    }
}

extension RFC3339 {
    /// The bytes `append(nanos:to:)` writes: "YYYY-MM-DDTHH:MM:SS" and "Z"
    /// (an Int64 of nanoseconds is within years 1677-2262), and a fraction
    /// without its trailing zeros.
    package static func length(nanos: Int64) -> Int {
        var frac = nanos % 1_000_000_000
        if frac < 0 { frac += 1_000_000_000 }
        guard frac != 0 else { return 20 }
        var digits = 9
        while frac % 10 == 0 { frac /= 10; digits -= 1 }
        return 21 + digits
    }
}
