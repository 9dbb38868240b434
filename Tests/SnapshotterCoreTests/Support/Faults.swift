import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// Rules installed for the length of one test body (see Sys.Faults). Each
/// rule is scoped to a path of the test's own temporary directory, so
/// other suites running meanwhile never match it.
struct ArmedFaults {
    let ids: [UInt64]
    /// How many calls rule `i` has failed so far.
    func fired(_ i: Int) -> Int { Sys.Faults.fired(ids[i]) }
}

func rule(_ op: SysOp, _ errno: Int32, in scope: String, nth: Int = 1, times: Int = 1) -> Sys.Faults.Rule {
    precondition(!scope.isEmpty, "a test's rule must be scoped to its own directory")
    return Sys.Faults.Rule(op: op, errno: errno, scope: scope, nth: nth, times: times)
}

@discardableResult
func withFaults<T>(_ rules: [Sys.Faults.Rule], _ body: (ArmedFaults) async throws -> T) async rethrows -> T {
    let armed = ArmedFaults(ids: rules.map(Sys.Faults.install))
    defer { armed.ids.forEach { Sys.Faults.remove($0) } }
    return try await body(armed)
}
