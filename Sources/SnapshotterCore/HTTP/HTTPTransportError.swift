/// Transport-level failures (no HTTP status), with whether a retry may help.
struct HTTPTransportError: Error {
    var message: String
    var retryable: Bool
    var tooLarge: Bool
    var aborted = false
    /// Body bytes written to the download file before the failure.
    var bytesWritten: Int64 = 0
    /// The server answered a download that starts past 0 (a resumed one)
    /// with the whole body instead of the range; nothing was written.
    var rangeIgnored = false
    /// The connect, total or stall timeout ended it.
    var timedOut = false
}
