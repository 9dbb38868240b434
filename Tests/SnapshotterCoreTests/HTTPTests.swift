import Testing
@testable import SnapshotterCore

@Suite("HTTP layer: curl options")
struct HTTPTests {
    @Test("An option libcurl refuses fails the request naming the option")
    func refusedOption() throws {
        // libcurl refuses string options over 8,000,000 bytes; unchecked,
        // the transfer ran without a URL and failed with "No URL set".
        let url = "http://127.0.0.1:9/" + String(repeating: "a", count: 8_000_001)
        #expect {
            _ = try CurlEasy().perform(HTTPRequest(url: url), HTTPSettings())
        } throws: { e in
            guard let e = e as? HTTPTransportError else { return false }
            return e.message.hasPrefix("libcurl refused CURLOPT_URL: ") && !e.retryable
        }
    }
}
