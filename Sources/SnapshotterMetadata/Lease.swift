#if canImport(Glibc)
import Glibc
#endif
import CShim
import Synchronization
import SnapshotterSystem
import SnapshotterStore

/// A lease: what one operation in flight uses, recorded in the metadata so
/// every process sharing the root sees it. It names its holder's lease file
/// (LeaseFile), so it dies with the holder, whatever PID namespace either
/// side runs in.
package struct Lease: Sendable {
    package let key: [UInt8]
    package var snapshots: [SnapshotKey]
    package var digests: [Digest]
    /// The holder's lease file; nil in records of older versions, which
    /// are judged by the pid and start time in their key.
    package var holder: String?
}

/// The leases in force, as read in one transaction.
package struct LeaseView {
    package var snapshots = Set<SnapshotKey>()
    package var digests = Set<Digest>()
    package var expired: [[UInt8]] = []
    /// The keys of the leases in force.
    package var alive = Set<[UInt8]>()
}

extension Lease {
    /// Version 1 (what older versions read: they ignore what follows),
    /// then the holder's lease file.
    package func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u8(1)
        w.u32(UInt32(snapshots.count))
        for s in snapshots { w.string(s.description) }
        w.u32(UInt32(digests.count))
        for d in digests { w.u64(d.value) }
        if let holder {
            w.u8(Self.holderTag)
            w.string(holder)
        }
        return w.bytes
    }

    package static let holderTag: UInt8 = 0x46

    package static func decode(key: [UInt8], _ bytes: UnsafeRawBufferPointer) throws -> Lease {
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
        var holder: String?
        if !r.atEnd {
            guard try r.u8() == holderTag else { throw r.fail() }
            let name = try r.string()
            guard LeaseFile.isValidName(name), r.atEnd else { throw r.fail() }
            holder = name
        }
        return Lease(key: key, snapshots: snaps, digests: digests, holder: holder)
    }

    /// `pid start n`, big-endian, as older versions read it; `n` is random
    /// (pids and start times repeat across PID namespaces).
    package static func newKey() -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(bitPattern: ProcessIdentity.pid))
        w.u64(ProcessIdentity.startTicks)
        w.u64(cshim_random_u64())
        return w.bytes
    }

    package static func owner(_ key: [UInt8]) -> (pid: Int32, start: UInt64)? {
        guard key.count == 20 else { return nil }
        return key.withUnsafeBytes { b in
            var r = ByteReader(b, what: "lease key")
            guard let pid = try? r.u32(), let start = try? r.u64() else { return nil }
            return (Int32(bitPattern: pid), start)
        }
    }

    /// Whether the holder still runs: its lease file is locked, or (records
    /// of older versions) its pid and start time still match.
    package func isAlive(_ probe: LeaseProbe) -> Bool {
        if let holder { return probe.isAlive(holder) }
        guard let owner = Lease.owner(key) else { return false }
        return ProcessIdentity.isAlive(pid: owner.pid, startTicks: owner.start)
    }
}
