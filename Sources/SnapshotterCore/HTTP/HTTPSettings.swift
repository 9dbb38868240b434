/// TLS and timeout settings shared by the requests of one client.
struct HTTPSettings: Sendable {
    var insecure = false
    var caFile: String?
    var connectTimeoutMs = 10_000
    /// A transfer that moves less than one byte a second for this long
    /// fails (a registry that stops answering); 0: no such limit.
    var stallTimeoutSeconds = 30
    var totalTimeoutMs = 300_000
}
