import CCurl
#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata

/// When and how long a client waits before trying a request again: after
/// a transport failure a new attempt may get past (`retryable`: refused or
/// dropped connections, timeouts, nothing received), a 429 or a 5xx, at
/// most `retries` times; attempt n waits `baseDelayMs * 2^min(n-1,
/// maxDoublings)` times a random jitter in 0.5...1.5, at most `maxDelayMs`.
package struct RetryPolicy: Sendable, Equatable {
    package var retries: Int
    package var baseDelayMs: Double
    package var maxDoublings: Int
    package var maxDelayMs: Double
    package static let jitter: ClosedRange<Double> = 0.5...1.5

    /// The registry's: its settings' retries and first backoff, up to 30 s.
    package static func registry(retries: Int, backoffMilliseconds: Int) -> RetryPolicy {
        RetryPolicy(retries: retries, baseDelayMs: Double(max(0, backoffMilliseconds)), maxDoublings: 10, maxDelayMs: 30_000)
    }

    /// Object storage's: its settings' retries, from 200 ms up to 10 s.
    package static func objectStorage(retries: Int) -> RetryPolicy {
        RetryPolicy(retries: retries, baseDelayMs: 200, maxDoublings: 8, maxDelayMs: 10_000)
    }

    package func retries(status: Int) -> Bool { status == 429 || status >= 500 }

    /// libcurl results a new attempt may get past (HTTPTransportError.retryable).
    package static func retryable(_ rc: CURLcode) -> Bool {
        [CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_OPERATION_TIMEDOUT, CURLE_SEND_ERROR,
         CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE].contains(rc)
    }

    /// The wait before retry `attempt` (1 for the first) with this jitter.
    package func delayMs(attempt: Int, jitter: Double) -> Double {
        let doublings = min(max(attempt - 1, 0), maxDoublings)
        return min(baseDelayMs * Double(1 << doublings) * jitter, maxDelayMs)
    }
}

/// One request's attempts under a policy: each `retry` that says yes has
/// counted the attempt and waited its delay.
package struct RetryAttempts {
    package let policy: RetryPolicy
    private(set) var count = 0
    /// Waits the given milliseconds (tests record instead).
    package var sleep: (Double) -> Void = { usleep(UInt32($0 * 1000)) }

    package init(_ policy: RetryPolicy) { self.policy = policy }

    /// Whether to try again after this status (having waited if so).
    package mutating func retry(after status: Int) -> Bool { policy.retries(status: status) && next() }

    /// Whether to try again after this failure (having waited if so).
    package mutating func retry(after error: HTTPTransportError) -> Bool { error.retryable && next() }

    /// Counts another attempt if one is left, waiting its delay unless
    /// `waiting` is false.
    package mutating func next(waiting: Bool = true) -> Bool {
        guard count < policy.retries else { return false }
        count += 1
        if waiting { sleep(policy.delayMs(attempt: count, jitter: Double.random(in: RetryPolicy.jitter))) }
        return true
    }
}

extension CurlPool {
    /// Performs the request `make` builds (again for each attempt: a fresh
    /// signature, the current token) until it gets an answer `attempts`
    /// does not retry, which it returns; a failure it does not retry is
    /// thrown (a canceled transfer is never retried).
    package func perform(_ settings: HTTPSettings, _ attempts: inout RetryAttempts,
                 _ make: () throws -> HTTPRequest) throws -> HTTPResponse {
        while true {
            let request = try make()
            do {
                let response = try perform(request, settings)
                if attempts.retry(after: response.status) { continue }
                return response
            } catch let e as HTTPTransportError {
                if attempts.retry(after: e) { continue }
                throw e
            }
        }
    }
}
