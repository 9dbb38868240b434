import Foundation
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// The log handler never runs inside a metadata transaction (the header
/// promises callbacks never run while the library holds a lock on store
/// state): messages produced there are delivered after it ends.
@Suite("Log delivery")
struct LogDeliveryTests {
    @Test("A collection that expires leases logs outside its transactions")
    func expiryLogsOutsideTransactions() async throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        try await fx.make(store, 0)
        // A lease whose holder is gone (its lease file does not exist).
        try store.meta.write { txn in
            try txn.putLease(Lease(key: Lease.newKey(), snapshots: [SnapshotKey(name: "sb", version: "v0")],
                                               digests: [], holder: String(repeating: "d", count: 32)))
        }
        let seen = Locked<[(String, Bool)]>([])
        var p = GCPolicy()
        p.highWatermarkPercent = 100
        // Every message of every test running meanwhile is checked: none
        // may arrive inside a transaction of its thread (or task).
        _ = try await LogTap.listen({ m, inside in seen.withLock { $0.append((m, inside)) } }) {
            try await store.gc(policy: p)
        }
        let messages = seen.withLock { $0 }
        #expect(messages.contains { $0.0.contains("gc \(store.root): expired 1 leases") })
        for (m, inside) in messages { #expect(!inside, "delivered inside a transaction: \(m)") }
        #expect(try store.meta.read { try $0.leaseCount() } == 0)
    }

    @Test("Messages logged inside a transaction arrive after it, in order; none is lost when it throws")
    func heldMessagesArriveAfterTheTransaction() throws {
        let fx = try GCFixture()
        defer { fx.cleanup() }
        let store = try fx.open()
        let seen = Locked<[String]>([])
        let tag = UUID().uuidString
        let sink: LogTap.Sink = { message, inside in
            if message.hasPrefix(tag) { seen.withLock { $0.append(message + (inside ? " inside" : "")) } }
        }
        try LogTap.listen(sink) {
            try store.meta.write { _ in
                Log.info("\(tag) one")
                try store.meta.read { _ in Log.info("\(tag) two") }
                #expect(seen.withLock { $0 }.isEmpty)
            }
            #expect(seen.withLock { $0 } == ["\(tag) one", "\(tag) two"])
            struct Boom: Error {}
            #expect(throws: Boom.self) {
                try store.meta.write { _ in
                    Log.info("\(tag) three")
                    throw Boom()
                }
            }
        }
        #expect(seen.withLock { $0 } == ["\(tag) one", "\(tag) two", "\(tag) three"])
    }
}
