#if canImport(Glibc)
import Glibc
#endif
import CLMDB
import Synchronization
import SnapshotterSystem
import SnapshotterStore

/// The metadata schema in LMDB:
/// - `snapshots`: `name:version` -> SnapshotRecord (created, files, config;
///   version 3: a header, the files in `parts`)
/// - `parts`: `name:version`, 0, part number -> a version 3 record's files
///   (RecordParts.swift)
/// - `access`: `name:version` -> last accessed (ns), kept apart so a restore
///   rewrites 8 bytes, not the file list
/// - `content`: digest -> ContentRecord
/// - `refs` (dup-sorted): digest -> each `name:version` that uses it
/// - `inodes`: dev+ino of a read-only link -> digest, size, mtime
/// - `leases`: `pid:start:n` -> the snapshots and digests an operation in
///   flight uses and its holder's lease file (`<root>/leases`); the
///   collector and delete leave them alone while the file is locked
/// - `uploaded`: remote id + digest -> nothing: written by older versions,
///   no longer read (a remote may lose objects: every publish checks each
///   digest with the remote itself)
/// - `trash`: digests whose last reference went and whose files are about to
///   be unlinked; a snapshot that needs one takes it back out.
/// The tables are for MetadataTransaction alone (internal to this target):
/// everything else calls its operations.
package final class MetadataStore: Sendable {
    let env: LMDBEnvironment
    let snapshots: MDB_dbi
    let access: MDB_dbi
    let content: MDB_dbi
    let refs: MDB_dbi
    let inodes: MDB_dbi
    let trash: MDB_dbi
    let leases: MDB_dbi
    let uploaded: MDB_dbi
    let parts: MDB_dbi
    /// The page faults counted when a MapPageBudget last gave the map back.
    let faultMark = Atomic<Int>(0)
    /// This instance's lease file, a sibling of the metadata directory.
    package let leaseFile: LeaseFile

    package init(directory: String, mapSize: Int, permissions: StorePermissions = StorePermissions()) throws {
        try permissions.ownDirectory(directory)
        let path = try Sys.realpath(directory)
        env = try SharedEnvironments.environment(path: path, mapSize: mapSize, permissions: permissions)
        let names = ["snapshots", "access", "content", "refs", "inodes", "trash", "leases", "uploaded", "parts"]
        let dbis = try env.openDatabases(names.map { ($0, $0 == "refs") })
        guard dbis.count == names.count else { throw SnapshotterError(.internal, "metadata tables: \(dbis.count) opened") }
        (snapshots, access, content, refs) = (dbis[0], dbis[1], dbis[2], dbis[3])
        (inodes, trash, leases, uploaded) = (dbis[4], dbis[5], dbis[6], dbis[7])
        parts = dbis[8]
        leaseFile = LeaseFile(dir: Paths.dirname(path) + "/leases")
    }

    /// Gives back the resident memory of the metadata map's pages this
    /// process has read (LMDBEnvironment.releaseMapPages): after a phase
    /// that read many records, and when an operation ends.
    package func releaseMapPages() {
        env.releaseMapPages()
    }

    // MARK: headroom

    /// Pages kept free for deletes and the collector: a new snapshot record
    /// is refused when it would leave fewer, so a full map can always be
    /// emptied again (docs/store-health.md). A sixteenth of the map, and at
    /// least 64 pages (a quarter of a very small map).
    package static func reservedPages(of total: Int) -> Int {
        max(total / 16, min(total / 4, 64))
    }

    /// Refuses a snapshot record of `recordBytes` naming `digests` digests
    /// when writing it would eat into the reserve; `what` names it.
    package func requireRoom(_ what: String, recordBytes: Int, digests: Int) throws {
        let (total, free, pageSize) = try env.pages()
        // The record's pages, one reference and content record per digest
        // (about 64 bytes each), and a few branch pages.
        let need = (recordBytes + digests * 64) / pageSize + 8
        let reserve = Self.reservedPages(of: total)
        guard free - need >= reserve else {
            throw SnapshotterError(.noSpace, "\(what): the metadata map at \(env.path) is full: \(total - free) of \(total) pages used, the last \(reserve) are kept for deletes and gc; \(LMDBEnvironment.mapFullAdvice)")
        }
    }
}

/// Gives back the map's pages (`releaseMapPages`) once the process has
/// taken `faults` page faults since the last time any budget of this store
/// did. A page read through the map brings up to 64 KiB of its neighbours
/// with it, so look-ups spread over a large table keep megabytes resident;
/// look-ups that stay on pages already mapped fault nothing, and then
/// nothing is given back (only to be faulted in again). Counted for the
/// process, not the thread: workers looking up at once share one budget,
/// so one release serves them all.
package struct MapPageBudget {
    private let store: MetadataStore
    private let faults: Int
    private var calls = 0

    package init(_ store: MetadataStore, faults: Int) {
        self.store = store
        self.faults = faults
    }

    /// Once per look-up: the faults are counted every 8th.
    package mutating func tick() {
        calls &+= 1
        guard calls & 7 == 0 else { return }
        let now = Self.processFaults()
        let mark = store.faultMark.load(ordering: .relaxed)
        guard now &- mark > faults else { return }
        if store.faultMark.compareExchange(expected: mark, desired: now, ordering: .relaxed).exchanged {
            store.releaseMapPages()
            store.faultMark.store(Self.processFaults(), ordering: .relaxed)
        }
    }

    /// The process's page faults so far (0 when they cannot be read: then
    /// nothing is given back before the operation ends, as without a budget).
    private static func processFaults() -> Int {
        var usage = rusage()
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return 0 }
        return usage.ru_minflt &+ usage.ru_majflt
    }
}
