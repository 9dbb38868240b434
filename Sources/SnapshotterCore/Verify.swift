#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

extension Snapshotter {
    /// Re-hashes every content file and read-only link and checks every
    /// record and reference against the files; reports what is wrong.
    /// With `repair`, fixes what it found (see docs/store-health.md):
    /// snapshots whose content is gone or corrupt are dropped, missing
    /// records, references and links are rebuilt from the content, and
    /// dangling references are removed.
    public func verify(repair: Bool = false, progress: ProgressHandler? = nil,
                       cancel: CancellationFlag? = nil) async throws -> VerifyReport {
        var report = try await check(progress: progress, cancel: cancel)
        if repair && !report.problems.isEmpty {
            let problems = report.problems
            report.repairs = try await operation(cancel) { _ in
                try await pool.run { try self.applyRepairs(problems) }
            }
        }
        return report
    }

    private func check(progress: ProgressHandler?, cancel: CancellationFlag?) async throws -> VerifyReport {
        try await operation(cancel) { flag in
            let reporter = ProgressReporter(handler: progress, cancel: flag, minIntervalNanos: options.progressIntervalNanos)
            let snap = try await pool.run {
                try self.meta.reconcile()
                return try self.metadataSnapshot()
            }
            var problems = snap.problems
            let digests = Array(snap.content.keys).sorted()
            let totalBytes = snap.content.values.saturatingTotal(\.encodedSize)
            reporter.begin(.verifying, filesTotal: Int64(digests.count), bytesTotal: totalBytes)
            let found = Locked<[VerifyProblem]>([])
            let checkedBytes = Locked<Int64>(0)
            try await forEachConcurrently(digests, limit: options.restoreConcurrency, pool: pool, cancel: flag) { d, buffer in
                guard let rec = snap.content[d] else { return }
                let issues = self.verifyContent(d, rec, buffer: buffer)
                if !issues.isEmpty { found.withLock { $0.append(contentsOf: issues) } }
                checkedBytes.withLock { $0 = $0.saturatingAdd(rec.encodedSize) }
                reporter.addBytes(rec.encodedSize)
                reporter.fileDone()
            }
            problems += found.withLock { $0 }.sorted { ($0.digest?.value ?? 0) < ($1.digest?.value ?? 0) }
            // Content files no record names (temporary files are the
            // collector's business, not a problem).
            let onDisk = try await pool.run { try self.store.listContent() }
            for name in onDisk.sorted() {
                guard let d = try? Digest(hex: name) else {
                    problems.append(VerifyProblem(kind: .orphanContent, digest: nil, snapshot: nil,
                                                  message: "\(self.store.contentDir)/\(name) is not a content file name"))
                    continue
                }
                if snap.content[d] == nil && !snap.trash.contains(d) {
                    problems.append(VerifyProblem(kind: .orphanContent, digest: d, snapshot: nil,
                                                  message: "content file \(d) has no record"))
                }
            }
            reporter.finish()
            return VerifyReport(snapshotsChecked: snap.snapshotCount, contentFilesChecked: digests.count,
                                bytesChecked: checkedBytes.withLock { $0 }, problems: problems)
        }
    }

    struct MetadataView: Sendable {
        var snapshotCount = 0
        var content: [Digest: ContentRecord] = [:]
        var trash = Set<Digest>()
        var problems: [VerifyProblem] = []
    }

    /// One read transaction: every record cross-checked against the others.
    private func metadataSnapshot() throws -> MetadataView {
        try meta.read { txn in
            var view = MetadataView()
            var snapshots: [SnapshotKey: Set<Digest>] = [:]
            try txn.forEachSnapshot { key, decoded in
                do {
                    let rec = try decoded.get()
                    snapshots[key] = Set(rec.files.map(\.digest))
                    for f in rec.files where f.readOnly {
                        if try Sys.lstatIfExists(store.linkPath(f.digest)) == nil {
                            view.problems.append(VerifyProblem(kind: .missingLink, digest: f.digest, snapshot: key.description,
                                                               message: "snapshot \(key): read-only link of \(f.relativePath) (\(f.digest)) is missing"))
                        }
                    }
                } catch {
                    view.problems.append(VerifyProblem(kind: .badRecord, digest: nil, snapshot: key.description,
                                                       message: "snapshot \(key): \(error.asSnapshotterError.message)"))
                }
            }
            view.snapshotCount = snapshots.count
            try txn.forEachContent { d, decoded in
                do { view.content[d] = try decoded.get() } catch {
                    view.problems.append(VerifyProblem(kind: .badRecord, digest: d, snapshot: nil,
                                                       message: "content \(d): \(error.asSnapshotterError.message)"))
                }
            }
            view.trash = Set(try txn.trashed())
            var referenced: [Digest: Set<SnapshotKey>] = [:]
            // A record being written holds references before it is a
            // snapshot (the collector drops it if its writer is gone).
            let beingWritten = Set(try txn.snapshotsBeingWritten().map(\.0))
            try txn.forEachReference { d, key in
                referenced[d, default: []].insert(key)
                if snapshots[key] == nil && !beingWritten.contains(key) {
                    view.problems.append(VerifyProblem(kind: .danglingReference, digest: d, snapshot: key.description,
                                                       message: "reference from \(d) to snapshot \(key), which does not exist"))
                }
            }
            for (key, digests) in snapshots.sorted(by: { $0.key < $1.key }) {
                for d in digests.sorted() {
                    if view.content[d] == nil {
                        view.problems.append(VerifyProblem(kind: .missingContentRecord, digest: d, snapshot: key.description,
                                                           message: "snapshot \(key) names content \(d), which has no record"))
                    }
                    if referenced[d]?.contains(key) != true {
                        view.problems.append(VerifyProblem(kind: .missingReference, digest: d, snapshot: key.description,
                                                           message: "snapshot \(key) uses \(d) but holds no reference to it"))
                    }
                }
            }
            return view
        }
    }

    private func verifyContent(_ d: Digest, _ rec: ContentRecord, buffer: UnsafeMutableRawBufferPointer) -> [VerifyProblem] {
        var out: [VerifyProblem] = []
        do {
            let r = try store.hashContent(d, buffer: buffer)
            if r.digest != d {
                out.append(VerifyProblem(kind: .corruptContent, digest: d, snapshot: nil,
                                         message: "content \(d) hashes to \(r.digest)"))
            } else if r.logicalSize != rec.logicalSize {
                out.append(VerifyProblem(kind: .corruptContent, digest: d, snapshot: nil,
                                         message: "content \(d) has logical size \(r.logicalSize), record says \(rec.logicalSize)"))
            }
        } catch let e as SnapshotterError {
            let kind: VerifyProblem.Kind = e.code == .notFound ? .missingContent : .corruptContent
            out.append(VerifyProblem(kind: kind, digest: d, snapshot: nil, message: "content \(d): \(e.message)"))
        } catch {
            out.append(VerifyProblem(kind: .corruptContent, digest: d, snapshot: nil, message: "content \(d): \(error)"))
        }
        if rec.hasLink {
            do {
                let h = try store.hashLink(d, buffer: buffer)
                if h != d {
                    out.append(VerifyProblem(kind: .corruptLink, digest: d, snapshot: nil,
                                             message: "read-only link \(d) hashes to \(h): its source was changed in place"))
                }
            } catch let e as SnapshotterError where e.code == .notFound {
                out.append(VerifyProblem(kind: .missingLink, digest: d, snapshot: nil, message: "read-only link \(d) is missing"))
            } catch {
                out.append(VerifyProblem(kind: .corruptLink, digest: d, snapshot: nil,
                                         message: "read-only link \(d): \(error.asSnapshotterError.message)"))
            }
        }
        return out
    }
}

extension Snapshotter {
    /// Applies repairs for `problems`; returns a line per action.
    func applyRepairs(_ problems: [VerifyProblem]) throws -> [String] {
        var lost = Set<Digest>()
        var dropSnapshots = Set<String>()
        for p in problems {
            switch p.kind {
            case .missingContent, .corruptContent:
                if let d = p.digest { lost.insert(d) }
            case .missingContentRecord:
                guard let d = p.digest else { continue }
                if try Sys.lstatIfExists(store.contentPath(d)) == nil { lost.insert(d) }
            case .badRecord:
                if let s = p.snapshot, p.digest == nil { dropSnapshots.insert(s) }
            default: break
            }
        }
        var actions = try dropLost(lost, badSnapshots: dropSnapshots)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SPF1.chunkSize, alignment: 4096)
        defer { buffer.deallocate() }
        for p in problems {
            if let action = try repair(p, lost: lost, buffer: buffer) { actions.append(action) }
        }
        for a in actions { Log.warn("verify --repair \(root): \(a)") }
        return actions
    }

    /// Content that is gone or corrupt: every snapshot that names it is
    /// dropped (it can never be restored from this store), and the corrupt
    /// file is removed so it cannot be mistaken for good content. Snapshots
    /// whose record is unreadable go too.
    private func dropLost(_ lost: Set<Digest>, badSnapshots dropSnapshots: Set<String>) throws -> [String] {
        var actions: [String] = []
        var freed: [Digest] = []
        try meta.write { txn in
            var users: [SnapshotKey: Set<Digest>] = [:]
            try txn.forEachSnapshot { key, decoded in
                if dropSnapshots.contains(key.description) {
                    users[key] = []
                    return
                }
                guard let rec = try? decoded.get() else { return }
                let digests = Set(rec.files.map(\.digest))
                if !digests.isDisjoint(with: lost) { users[key] = digests }
            }
            for (key, digests) in users.sorted(by: { $0.key < $1.key }) {
                freed += try txn.dropSnapshot(key, digests: digests, keep: lost).trashed
                actions.append("dropped snapshot \(key): its content is missing or corrupt")
            }
            for d in lost.sorted() {
                try txn.forgetContent(d)
                try store.removeContent(d)
                actions.append("removed content \(d) (missing or corrupt)")
            }
        }
        _ = try removeTrashed(freed)
        return actions
    }

    /// Repairs one problem of a digest that is not lost; returns what was
    /// done, nil when nothing was.
    private func repair(_ p: VerifyProblem, lost: Set<Digest>, buffer: UnsafeMutableRawBufferPointer) throws -> String? {
        switch p.kind {
        case .missingContentRecord:
            guard let d = p.digest, !lost.contains(d), let st = try Sys.lstatIfExists(store.contentPath(d)) else { return nil }
            let r = try store.hashContent(d, buffer: buffer)
            guard r.digest == d else { return nil }
            try meta.write { txn in
                if try txn.contentRecord(d) == nil {
                    let hasLink = try Sys.lstatIfExists(store.linkPath(d)) != nil
                    try txn.putContent(d, ContentRecord(encodedSize: Int64(st.st_size), logicalSize: r.logicalSize,
                                                        created: Sys.nowNanos(), hasLink: hasLink))
                }
            }
            return "recreated the record of content \(d)"
        case .missingLink, .corruptLink:
            guard let d = p.digest, !lost.contains(d), try Sys.lstatIfExists(store.contentPath(d)) != nil else { return nil }
            if p.kind == .corruptLink { try Sys.unlinkIfExists(store.linkPath(d)) }
            guard try Sys.lstatIfExists(store.linkPath(d)) == nil else { return nil }
            try store.materializeLink(d, buffer: buffer)
            try meta.write { txn in
                if var rec = try txn.contentRecord(d), !rec.hasLink {
                    rec.hasLink = true
                    try txn.putContent(d, rec)
                }
            }
            return "rebuilt read-only link \(d) from its content"
        case .missingReference:
            guard let d = p.digest, let s = p.snapshot, !lost.contains(d) else { return nil }
            let key = try SnapshotKey(parsing: s)
            try meta.write { txn in
                if try txn.hasSnapshot(key) { try txn.addReference(d, from: key) }
            }
            return "added the reference from \(d) to \(s)"
        case .danglingReference:
            guard let d = p.digest, let s = p.snapshot else { return nil }
            let key = try SnapshotKey(parsing: s)
            try meta.write { txn in _ = try txn.removeReference(d, from: key) }
            return "removed the dangling reference from \(d) to \(s)"
        default:
            return nil
        }
    }
}
