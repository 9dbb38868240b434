import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// A `WWW-Authenticate` challenge: scheme and its parameters.
package struct AuthChallenge: Equatable {
    package var scheme: String
    package var params: [String: String]

    package static func parse(_ header: String) -> AuthChallenge? {
        let trimmed = header.trimmingCharacters(in: " ")
        guard let space = trimmed.firstIndex(of: " ") else {
            return trimmed.isEmpty ? nil : AuthChallenge(scheme: trimmed.lowercased(), params: [:])
        }
        let scheme = trimmed[..<space].lowercased()
        var params: [String: String] = [:]
        var rest = Substring(trimmed[trimmed.index(after: space)...])
        while !rest.isEmpty {
            rest = rest.drop { $0 == " " || $0 == "," }
            guard let eq = rest.firstIndex(of: "=") else { break }
            let key = rest[..<eq].trimmingCharacters(in: " ").lowercased()
            rest = rest[rest.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                while let c = rest.first {
                    rest = rest.dropFirst()
                    if c == "\\", let n = rest.first { value.append(n); rest = rest.dropFirst(); continue }
                    if c == "\"" { break }
                    value.append(c)
                }
            } else {
                let end = rest.firstIndex(of: ",") ?? rest.endIndex
                value = rest[..<end].trimmingCharacters(in: " ")
                rest = rest[end...]
            }
            params[key] = value
        }
        return AuthChallenge(scheme: scheme, params: params)
    }
}
