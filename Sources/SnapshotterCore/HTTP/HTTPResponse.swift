/// A response as libcurl delivered it (the last hop's, after redirects).
struct HTTPResponse: Sendable {
    var status: Int
    /// Header names lowercased; later values win.
    var headers: [String: String]
    var body: [UInt8]
    /// The URL after redirects.
    var effectiveURL: String

    func header(_ name: String) -> String? { headers[name.lowercased()] }
}
