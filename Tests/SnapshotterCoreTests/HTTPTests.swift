import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

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

@Suite("HTTP layer: the retry policy")
struct RetryPolicyTests {
    /// Attempts under `policy` that record their waits instead of sleeping.
    func recording(_ policy: RetryPolicy, _ waits: Locked<[Double]>) -> RetryAttempts {
        var a = RetryAttempts(policy)
        a.sleep = { ms in waits.withLock { $0.append(ms) } }
        return a
    }

    @Test("429 and 5xx are retried; other statuses are answers")
    func statuses() {
        let p = RetryPolicy.registry(retries: 4, backoffMilliseconds: 200)
        for s in [429, 500, 502, 503, 504, 599] { #expect(p.retries(status: s), "\(s)") }
        for s in [200, 201, 204, 206, 301, 307, 400, 401, 403, 404, 416, 428, 499] { #expect(!p.retries(status: s), "\(s)") }
    }

    @Test("A refused connection is retried; a canceled or oversized transfer is not")
    func errors() throws {
        var attempts = RetryAttempts(.objectStorage(retries: 4))
        attempts.sleep = { _ in }
        #expect {
            _ = try CurlEasy().perform(HTTPRequest(url: "http://localhost/", unixSocketPath: "/nonexistent-\(getpid())/d.sock"), HTTPSettings())
        } throws: { e in (e as? HTTPTransportError)?.retryable == true }
        let dropped = attempts.retry(after: HTTPTransportError(message: "dropped", retryable: true, tooLarge: false))
        let canceled = attempts.retry(after: HTTPTransportError(message: "canceled", retryable: false, tooLarge: false, aborted: true))
        let large = attempts.retry(after: HTTPTransportError(message: "large", retryable: false, tooLarge: true))
        #expect(dropped && !canceled && !large)
        #expect(attempts.count == 1)
    }

    @Test("Delays double from the base with jitter 0.5...1.5, up to each client's cap")
    func delays() {
        let registry = RetryPolicy.registry(retries: 4, backoffMilliseconds: 200)
        #expect(registry.delayMs(attempt: 1, jitter: 0.5) == 100 && registry.delayMs(attempt: 1, jitter: 1.5) == 300)
        #expect(registry.delayMs(attempt: 3, jitter: 1) == 800)
        #expect(registry.delayMs(attempt: 9, jitter: 1.5) == 30_000 && registry.delayMs(attempt: 1_000, jitter: 0.5) == 30_000)
        #expect(RetryPolicy.registry(retries: 4, backoffMilliseconds: -5).delayMs(attempt: 2, jitter: 1.5) == 0)
        let s3 = RetryPolicy.objectStorage(retries: 4)
        #expect(s3.delayMs(attempt: 1, jitter: 0.5) == 100 && s3.delayMs(attempt: 2, jitter: 1.5) == 600)
        #expect(s3.delayMs(attempt: 7, jitter: 1.5) == 10_000 && s3.delayMs(attempt: Int.max, jitter: 0.5) == 10_000)
    }

    @Test("Each retry waits its attempt's delay within the jitter's bounds; the budget ends it")
    func budget() {
        let waits = Locked<[Double]>([])
        let policy = RetryPolicy.registry(retries: 3, backoffMilliseconds: 100)
        var attempts = recording(policy, waits)
        for i in 1...3 {
            let again = attempts.retry(after: 503)
            #expect(again, "retry \(i)")
        }
        let fourth = attempts.retry(after: 503), unwaited = attempts.next(waiting: false)
        #expect(!fourth && !unwaited)
        let got = waits.withLock { $0 }
        #expect(got.count == 3)
        for (i, ms) in got.enumerated() {
            let nominal = 100.0 * Double(1 << i)
            #expect(ms >= nominal * 0.5 && ms <= nominal * 1.5, "retry \(i + 1) waited \(ms) ms")
        }
        var quiet = recording(.objectStorage(retries: 1), waits)
        let quietly = quiet.next(waiting: false)
        #expect(quietly && waits.withLock { $0.count } == 3)
        #expect(RetryAttempts(.objectStorage(retries: 0)).count == 0)
    }

    @Test("The pool's retrying perform makes the request again for each attempt, then throws the failure")
    func poolRetries() {
        let waits = Locked<[Double]>([])
        var attempts = recording(.objectStorage(retries: 2), waits)
        var made = 0
        var thrown: Error?
        do {
            _ = try CurlPool().perform(HTTPSettings(), &attempts) {
                made += 1
                return HTTPRequest(url: "http://localhost/", unixSocketPath: "/nonexistent-\(getpid())/d.sock")
            }
        } catch { thrown = error }
        #expect((thrown as? HTTPTransportError)?.retryable == true)
        #expect(made == 3 && attempts.count == 2 && waits.withLock { $0.count } == 2)
    }
}
