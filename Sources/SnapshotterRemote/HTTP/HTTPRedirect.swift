import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// How a redirect is followed: only to http(s), and without credentials
/// when it leaves the origin (a registry's 307 to a blob store must not
/// carry the user's Basic credentials or Bearer token, whatever libcurl's
/// version does with a hand-set Authorization header).
package enum HTTPRedirect {
    package static let statuses: Set<Int> = [301, 302, 303, 307, 308]
    package static let maxHops = 5
    /// Header names (lowercased) that carry credentials.
    package static let credentialHeaders: Set<String> = ["authorization", "proxy-authorization", "cookie", "x-amz-security-token"]

    package static func follow(_ request: HTTPRequest, to next: String, status: Int) throws -> HTTPRequest {
        guard let target = URLOrigin(next) else {
            throw HTTPTransportError(message: "redirect to \(Redact.text(next)) refused: only http and https are followed",
                                     retryable: false, tooLarge: false)
        }
        var req = request
        if URLOrigin(request.url) != target {
            req.headers = request.headers.filter { !isCredential($0) }
        }
        if status == 303 || ((status == 301 || status == 302) && request.method == "POST") {
            req.method = "GET"
            req.body = nil
            req.uploadFile = nil
        }
        req.url = next
        return req
    }

    package static func isCredential(_ header: String) -> Bool {
        guard let colon = header.firstIndex(of: ":") else { return false }
        return credentialHeaders.contains(header[..<colon].trimmingCharacters(in: " ").lowercased())
    }
}
