import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// The origin of an http(s) URL (RFC 6454: scheme, host, port), the unit
/// credentials are bound to: a registry's credentials go only to its own
/// origin, or to an https token realm (docs/security.md).
package struct URLOrigin: Equatable, Sendable {
    package var scheme: String
    package var host: String
    package var port: Int

    /// nil for anything but a well-formed http:// or https:// URL.
    package init?(_ url: String) {
        guard let sep = url.firstRange(of: "://") else { return nil }
        let scheme = url[..<sep.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = url[sep.upperBound...]
        var authority = rest[..<(rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex)]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var host = Substring(authority)
        var portText: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { return nil }
            host = host[...close]
        } else if let colon = host.lastIndex(of: ":") {
            portText = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        guard !host.isEmpty else { return nil }
        var port = scheme == "https" ? 443 : 80
        if let portText, !portText.isEmpty {
            guard portText.allSatisfy(\.isASCII), let p = Int(portText), p > 0, p < 65536 else { return nil }
            port = p
        }
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = port
    }

    package var isHTTPS: Bool { scheme == "https" }
}
