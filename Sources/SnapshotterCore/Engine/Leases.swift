#if canImport(Glibc)
import Glibc
#endif
import CShim
import Synchronization

/// A lease: what one operation in flight uses, recorded in the metadata so
/// every process sharing the root sees it. It names its process by pid and
/// start time, so a lease whose process died (or whose pid was reused)
/// expires by itself.
struct Lease: Sendable {
    let key: [UInt8]
    var snapshots: [SnapshotKey]
    var digests: [Digest]
}

/// The leases in force, as read in one transaction.
struct LeaseView {
    var snapshots = Set<SnapshotKey>()
    var digests = Set<Digest>()
    var expired: [[UInt8]] = []
}

enum ProcessIdentity {
    // Read again in a forked child: its leases must name it, not the parent.
    private static let cached = ForkSafeLock<(generation: Int, pid: Int32, start: UInt64)?>(nil)
    private static var current: (generation: Int, pid: Int32, start: UInt64) {
        let g = Fork.generation
        return cached.withLock { c in
            if let c, c.generation == g { return c }
            let now = (generation: g, pid: getpid(), start: cshim_process_start_ticks(getpid()))
            c = now
            return now
        }
    }
    static var pid: Int32 { current.pid }
    static var startTicks: UInt64 { current.start }
    static let counter = AtomicCounter()

    /// Whether the process a lease names still runs (same pid, same start).
    static func isAlive(pid: Int32, startTicks: UInt64) -> Bool {
        if pid == Self.pid { return startTicks == Self.startTicks }
        let now = cshim_process_start_ticks(pid)
        return now != 0 && now == startTicks
    }
}

extension Lease {
    func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(1)
        w.u32(UInt32(snapshots.count))
        for s in snapshots { w.string(s.description) }
        w.u32(UInt32(digests.count))
        for d in digests { w.u64(d.value) }
        return w.bytes
    }

    static func decode(key: [UInt8], _ bytes: UnsafeRawBufferPointer) throws -> Lease {
        var r = ByteReader(bytes, what: "lease")
        guard try r.u8() == 1 else { throw r.fail() }
        var snaps: [SnapshotKey] = []
        let ns = Int(try r.u32())
        guard ns <= bytes.count else { throw r.fail() }
        for _ in 0..<ns {
            let text = try r.string()
            guard let colon = text.lastIndex(of: ":") else { throw r.fail() }
            snaps.append(SnapshotKey(name: String(text[..<colon]), version: String(text[text.index(after: colon)...])))
        }
        let nd = Int(try r.u32())
        guard nd <= bytes.count else { throw r.fail() }
        var digests: [Digest] = []
        for _ in 0..<nd { digests.append(Digest(try r.u64())) }
        return Lease(key: key, snapshots: snaps, digests: digests)
    }

    /// `pid start n`, big-endian, so the owner can be read from the key.
    static func newKey() -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(bitPattern: ProcessIdentity.pid))
        w.u64(ProcessIdentity.startTicks)
        w.u64(UInt64(ProcessIdentity.counter.next()))
        return w.bytes
    }

    static func owner(_ key: UnsafeRawBufferPointer) -> (pid: Int32, start: UInt64)? {
        guard key.count == 20 else { return nil }
        var r = ByteReader(key, what: "lease key")
        guard let pid = try? r.u32(), let start = try? r.u64() else { return nil }
        return (Int32(bitPattern: pid), start)
    }
}

extension MetadataStore {
    func putLease(_ txn: LMDBTransaction, _ lease: Lease) throws {
        try txn.put(leases, lease.key, lease.encode())
    }

    /// Every lease in force; those of dead processes are listed as expired.
    func leaseView(_ txn: LMDBTransaction) throws -> LeaseView {
        var view = LeaseView()
        try txn.forEach(leases) { k, v in
            guard let owner = Lease.owner(k), ProcessIdentity.isAlive(pid: owner.pid, startTicks: owner.start),
                  let lease = try? Lease.decode(key: Array(k), v) else {
                view.expired.append(Array(k))
                return true
            }
            view.snapshots.formUnion(lease.snapshots)
            view.digests.formUnion(lease.digests)
            return true
        }
        return view
    }
}

extension Snapshotter {
    /// Takes a lease on a snapshot and its content for the length of `body`.
    /// The lease is written in a write transaction, so a collector or
    /// delete either sees it or finished before it (and then the record is
    /// gone, which `check` reports).
    /// `check` runs in the same transaction and returns more digests to
    /// lease (those of a record it reads there).
    /// `onSuccess` runs in the transaction that releases the lease, when
    /// `body` succeeded (a restore records its access time there).
    func withLease<T: Sendable>(snapshots: [SnapshotKey], digests: [Digest],
                                check: @escaping @Sendable (LMDBTransaction) throws -> [Digest] = { _ in [] },
                                onSuccess: (@Sendable (LMDBTransaction) throws -> Void)? = nil,
                                _ body: () async throws -> T) async throws -> T {
        let key = Lease.newKey()
        let lease = try await pool.run {
            try self.meta.env.write { txn -> Lease in
                let more = try check(txn)
                let lease = Lease(key: key, snapshots: snapshots, digests: Array(Set(digests + more)))
                try self.meta.putLease(txn, lease)
                return lease
            }
        }
        let release: @Sendable (Bool) async throws -> Void = { succeeded in
            try await self.pool.run {
                try self.meta.env.write { txn in
                    _ = try txn.delete(self.meta.leases, lease.key)
                    if succeeded, let onSuccess { try onSuccess(txn) }
                }
            }
        }
        let result: T
        do {
            result = try await body()
        } catch {
            try? await release(false)
            throw error
        }
        try await release(true)
        return result
    }

    /// Removes the leases of processes that no longer run.
    func expireLeases() throws -> Int {
        try meta.env.write { txn in
            let view = try meta.leaseView(txn)
            for k in view.expired { try txn.delete(meta.leases, k) }
            if !view.expired.isEmpty { Log.info("gc \(root): expired \(view.expired.count) leases of processes that died") }
            return view.expired.count
        }
    }

    /// Snapshots and digests leased now (for tests and stats).
    func activeLeases() throws -> LeaseView {
        try meta.env.read { try meta.leaseView($0) }
    }
}
