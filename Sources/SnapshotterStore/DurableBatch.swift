#if canImport(Glibc)
import Glibc
#endif
import CShim
import SnapshotterSystem

/// The small content files and read-only links of one snapshot, made
/// durable together by one barrier before the metadata commit instead of
/// one fsync each (docs/design-notes.md, "Batched durability"). A deferred
/// content file stays under its temporary name until the barrier, so a
/// final name still only ever holds content that was durable first.
package final class DurableBatch: Sendable {
    /// Files at least this large are fsynced and placed one by one: their
    /// fsync costs their bytes, which the barrier would pay as well.
    package static let deferBelow: Int64 = 1 << 20
    /// Up to this many deferred files the barrier fsyncs each one; beyond
    /// it, one syncfs of the store's filesystem.
    package static let fsyncEachUpTo = 16

    package enum Kind: UInt8, Sendable { case content, link }

    /// One deferred file: a content temp (by its number) or a link (by digest).
    package struct Entry: Sendable {
        package var digest: Digest
        package var number: UInt64
        package var kind: Kind
    }

    private struct State {
        var entries: [Entry] = []
        var contentDigests: Set<Digest> = []
        var nextNumber: UInt64 = 0
        var lookUps = StoredLookUps()
    }

    package let store: ContentStore
    /// The store's content directory, opened before any write of the batch:
    /// syncfs reports the writeback errors since this open.
    private let dirFD: Int32
    private let tag: String
    private let state = Locked(State())

    package init(store: ContentStore) throws {
        self.store = store
        dirFD = try Sys.open(store.contentDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        tag = "\(ContentStore.tempPrefix)\(Sys.pid)-b\(String(cshim_random_u64(), radix: 36))-"
    }

    deinit {
        discard()
        Sys.close(dirFD)
    }

    /// Removes the temporary files of a batch that failed before (or in)
    /// its barrier; after a barrier there is nothing left to remove.
    package func discard() {
        let entries = state.withLock { s -> [Entry] in
            defer { s.entries = []; s.contentDigests = [] }
            return s.entries
        }
        for e in entries where e.kind == .content { try? Sys.unlinkIfExists(at: store.contentDirFD, tempName(e.number), tempPath(e.number)) }
    }

    /// A fresh temporary content file name of this batch: its number and path.
    package func newTemp() -> (UInt64, String) {
        let n = state.withLock { s -> UInt64 in
            s.nextNumber += 1
            return s.nextNumber
        }
        return (n, tempPath(n))
    }

    package func tempPath(_ n: UInt64) -> String { "\(store.contentDir)/\(tag)\(n)" }
    package func tempName(_ n: UInt64) -> String { "\(tag)\(n)" }

    /// Keeps temporary file `n`, holding `digest`, for the barrier; returns
    /// its place among the batch's content renames (0 first), nil when the
    /// batch already holds that content (drop this copy).
    package func deferContent(_ n: UInt64, _ digest: Digest) -> Int? {
        state.withLock { s in
            guard s.contentDigests.insert(digest).inserted else { return nil }
            s.entries.append(Entry(digest: digest, number: n, kind: .content))
            return s.contentDigests.count - 1
        }
    }

    /// Whether to look for the stored content of a new temporary file
    /// before keeping it (see StoredLookUps).
    package func shouldLookUpStored() -> Bool {
        state.withLock { $0.lookUps.shouldLookUp() }
    }

    /// What a look-up for stored content found.
    package func noteLookUp(found: Bool) {
        state.withLock { $0.lookUps.note(found: found) }
    }

    /// A new read-only link whose data (the source's) must be durable.
    package func deferLink(_ digest: Digest) {
        state.withLock { $0.entries.append(Entry(digest: digest, number: 0, kind: .link)) }
    }

    /// How many files the batch holds.
    package var count: Int { state.withLock { $0.entries.count } }

    /// Makes every deferred file durable, then renames deferred content to
    /// its final name (content already there wins: placed meanwhile by
    /// another process, or stored before and not looked up). The
    /// caller then fsyncs the store's directories once, as before. Returns
    /// the digests whose content someone else put in place first.
    /// `placement` learns of each rename before it starts.
    @discardableResult
    package func barrier(placement: Placement? = nil) throws -> Set<Digest> {
        let (entries, contentCount) = state.withLock { s -> ([Entry], Int) in
            defer { s.entries = []; s.contentDigests = [] }
            return (s.entries, s.contentDigests.count)
        }
        if entries.isEmpty { return [] }
        var lost = Set<Digest>()
        do {
            if entries.count <= Self.fsyncEachUpTo {
                for e in entries { try fsyncEntry(e) }
            } else {
                try Sys.syncfs(dirFD, store.contentDir)
            }
            let dir = store.contentDirFD
            placement?.start(total: contentCount)
            var ordinal = 0
            for e in entries where e.kind == .content {
                placement?.beginning(ordinal)
                ordinal += 1
                let name = tempName(e.number)
                if try !Sys.renameNoReplace(at: dir, name, e.digest.hex, in: store.contentDir) {
                    try Sys.unlinkIfExists(at: dir, name, tempPath(e.number))
                    lost.insert(e.digest)
                }
            }
        } catch {
            for e in entries where e.kind == .content { try? Sys.unlinkIfExists(at: store.contentDirFD, tempName(e.number), tempPath(e.number)) }
            throw error
        }
        return lost
    }

    /// Opened below the store's directory descriptors, never by path.
    private func fsyncEntry(_ e: Entry) throws {
        let (dir, name, path) = e.kind == .content
            ? (store.contentDirFD, tempName(e.number), tempPath(e.number))
            : (store.linkDirFD, e.digest.hex, store.linkPath(e.digest))
        let fd: Int32
        do {
            fd = try Sys.openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0, path)
        } catch let error as SnapshotterError where e.kind == .link && error.code == .notFound {
            // A link a collector removed meanwhile: the commit finds it missing.
            return
        }
        defer { Sys.close(fd) }
        try Sys.fsync(fd, path)
    }
}
