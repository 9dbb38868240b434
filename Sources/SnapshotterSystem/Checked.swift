/// Arithmetic on numbers from outside (configs, registries, daemons, the
/// store's own records): overflow becomes an error naming the field, or,
/// for counters that are only shown, saturates; it never traps.
extension Sequence {
    /// The sum of `value` over the elements; an error naming `field` when it
    /// does not fit in an Int64 or an element is negative.
    package func checkedTotal(_ field: String, code: SnapshotterError.Code = .invalidArgument,
                      _ value: (Element) throws -> Int64) throws -> Int64 {
        var total: Int64 = 0
        for e in self {
            let v = try value(e)
            guard v >= 0 else { throw SnapshotterError(code, "\(field) \(v) is negative") }
            let (sum, overflow) = total.addingReportingOverflow(v)
            guard !overflow else { throw SnapshotterError(code, "the total \(field) exceeds \(Int64.max) bytes") }
            total = sum
        }
        return total
    }

    /// The sum of `value`, stopping at Int64.max (for counters only shown).
    package func saturatingTotal(_ value: (Element) -> Int64) -> Int64 {
        reduce(Int64(0)) { $0.saturatingAdd(value($1)) }
    }
}

extension Int64 {
    package func saturatingAdd(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }

    /// `self * part / whole` for 0 <= part <= whole (a share of a total),
    /// without overflowing in between.
    package func share(_ part: Int, of whole: Int) -> Int64 {
        guard whole > 0 else { return 0 }
        let p = Int64(Swift.min(Swift.max(part, 0), whole))
        return Int64(whole).dividingFullWidth(multipliedFullWidth(by: p)).quotient
    }

    /// Whole seconds as nanoseconds, clamped to the Int64 range.
    package static func nanos(wholeSeconds s: Int64) -> Int64 {
        let (ns, o) = s.multipliedReportingOverflow(by: 1_000_000_000)
        return o ? (s < 0 ? .min : .max) : ns
    }

    /// Seconds (a caller's Double) as nanoseconds, clamped to [0, Int64.max];
    /// NaN is 0.
    package static func nanos(seconds: Double) -> Int64 {
        guard seconds > 0 else { return 0 }
        let ns = seconds * 1e9
        return ns >= 9.2e18 ? .max : Int64(ns)
    }
}

extension Int {
    /// A caller's Double (seconds, milliseconds) as an Int, clamped to
    /// [lower, upper]; NaN is `lower`.
    package static func clamped(_ value: Double, _ lower: Int, _ upper: Int) -> Int {
        guard value > Double(lower) else { return lower }
        guard value < Double(upper) else { return upper }
        return Int(value)
    }
}
