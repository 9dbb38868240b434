import CCurl
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// A request's header lines as the curl_slist CURLOPT_HTTPHEADER points
/// at (libcurl does not copy it: it must outlive the transfer).
package final class CurlHeaderList {
    private(set) var list: UnsafeMutablePointer<curl_slist>?

    package init(_ lines: [String]) throws {
        for line in lines {
            guard let longer = cshim_curl_slist_append(list, line) else {
                cshim_curl_slist_free_all(list)
                throw HTTPTransportError(message: "libcurl could not add a request header", retryable: false, tooLarge: false)
            }
            list = longer
        }
    }

    deinit { cshim_curl_slist_free_all(list) }
}
