/// Removes secrets from text that may hold URLs: the userinfo of every
/// `scheme://user:pass@host` and the values of query parameters that carry
/// signatures, credentials or tokens. Every error message and log line goes
/// through it (SnapshotterError.init, Log.log), so a URL built into a
/// message anywhere is covered.
package enum Redact {
    package static let mask = "***"

    /// Text from a server for a message: control characters shown as `?`,
    /// cut to `max` characters.
    package static func printable(_ s: String, max: Int) -> String {
        var out = ""
        for (i, c) in s.unicodeScalars.enumerated() {
            if i == max { out += "..."; break }
            out.unicodeScalars.append(c.properties.generalCategory == .control ? "?" : c)
        }
        return out
    }

    package static func text(_ s: String) -> String {
        guard s.contains("://") || s.contains("=") else { return s }
        return queryValues(userinfo(s))
    }

    /// Query parameter names (lowercased) whose values are secret; names
    /// containing one of `secretParts` are too (X-Amz-Signature, ...).
    package static let secretNames: Set<String> = ["sig", "code", "key", "auth"]
    package static let secretParts = ["signature", "credential", "token", "password", "secret", "passwd", "apikey", "api_key"]

    package static func isSecret(_ name: Substring) -> Bool {
        let n = name.lowercased()
        return secretNames.contains(n) || secretParts.contains { n.contains($0) }
    }

    private static func ends(_ c: Character) -> Bool {
        c.isWhitespace || c == "\"" || c == "'" || c == "<" || c == ">" || c == "`"
    }

    /// `x://user:pw@host` -> `x://***@host`. An authority that is itself
    /// followed by a nested URL (`s3://bucket@http://host`) keeps its name:
    /// the nested URL is redacted on its own.
    private static func userinfo(_ s: String) -> String {
        var out = ""
        var rest = Substring(s)
        while let sep = rest.firstRange(of: "://") {
            out += rest[..<sep.upperBound]
            rest = rest[sep.upperBound...]
            let end = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" || ends($0) } ?? rest.endIndex
            let authority = rest[..<end]
            guard let at = authority.lastIndex(of: "@") else { continue }
            let nested = authority[authority.index(after: at)...].hasSuffix(":") && rest[end...].hasPrefix("//")
            if nested {
                out += rest[...at]
                rest = rest[rest.index(after: at)...]
                continue
            }
            out += mask
            rest = rest[at...]
        }
        return out + rest
    }

    /// `?X-Amz-Signature=abc&b=1` -> `?X-Amz-Signature=***&b=1`.
    private static func queryValues(_ s: String) -> String {
        var out = ""
        var rest = Substring(s)
        while let i = rest.firstIndex(where: { $0 == "?" || $0 == "&" || $0 == ";" }) {
            out += rest[...i]
            rest = rest[rest.index(after: i)...]
            let nameEnd = rest.firstIndex { $0 == "=" || $0 == "&" || $0 == "?" || ends($0) } ?? rest.endIndex
            guard nameEnd < rest.endIndex, rest[nameEnd] == "=", isSecret(rest[..<nameEnd]) else { continue }
            out += rest[...nameEnd] + mask
            rest = rest[rest.index(after: nameEnd)...]
            rest = rest[(rest.firstIndex { $0 == "&" || $0 == "#" || ends($0) } ?? rest.endIndex)...]
        }
        return out + rest
    }
}
