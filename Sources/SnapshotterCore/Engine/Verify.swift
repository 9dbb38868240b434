#if canImport(Glibc)
import Glibc
#endif
import Synchronization

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
                try self.meta.env.reconcile()
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
        try meta.env.read { txn in
            var view = MetadataView()
            var snapshots: [SnapshotKey: Set<Digest>] = [:]
            try txn.forEach(meta.snapshots) { k, v in
                let key = try SnapshotKey(bytes: k)
                do {
                    let rec = try SnapshotRecord.decode(v, key: key.description)
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
                return true
            }
            view.snapshotCount = snapshots.count
            try txn.forEach(meta.content) { k, v in
                let d = try Digest(key: k)
                do { view.content[d] = try ContentRecord.decode(v, digest: d) } catch {
                    view.problems.append(VerifyProblem(kind: .badRecord, digest: d, snapshot: nil,
                                                       message: "content \(d): \(error.asSnapshotterError.message)"))
                }
                return true
            }
            try txn.forEach(meta.trash) { k, _ in
                view.trash.insert(try Digest(key: k))
                return true
            }
            var referenced: [Digest: Set<SnapshotKey>] = [:]
            try txn.forEach(meta.refs) { k, v in
                let d = try Digest(key: k)
                let key = try SnapshotKey(bytes: v)
                referenced[d, default: []].insert(key)
                if snapshots[key] == nil {
                    view.problems.append(VerifyProblem(kind: .danglingReference, digest: d, snapshot: key.description,
                                                       message: "reference from \(d) to snapshot \(key), which does not exist"))
                }
                return true
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
        var actions: [String] = []
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
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SPF1.chunkSize, alignment: 4096)
        defer { buffer.deallocate() }
        // Content that is gone or corrupt: every snapshot that names it is
        // dropped (it can never be restored from this store), and the
        // corrupt file is removed so it cannot be mistaken for good content.
        var freed: [Digest] = []
        try meta.env.write { txn in
            var users: [SnapshotKey: [Digest]] = [:]
            try txn.forEach(meta.snapshots) { k, v in
                let key = try SnapshotKey(bytes: k)
                if dropSnapshots.contains(key.description) {
                    users[key] = []
                    return true
                }
                guard let rec = try? SnapshotRecord.decode(v, key: key.description) else { return true }
                let digests = Set(rec.files.map(\.digest))
                if !digests.isDisjoint(with: lost) { users[key] = Array(digests) }
                return true
            }
            for (key, digests) in users.sorted(by: { $0.key < $1.key }) {
                try txn.delete(meta.snapshots, key.bytes)
                try txn.delete(meta.access, key.bytes)
                for d in digests {
                    try txn.delete(meta.refs, d.key, value: key.bytes)
                    if try meta.references(txn, d).isEmpty && !lost.contains(d) {
                        try txn.delete(meta.content, d.key)
                        try txn.put(meta.trash, d.key, [])
                        freed.append(d)
                    }
                }
                actions.append("dropped snapshot \(key): its content is missing or corrupt")
            }
            for d in lost.sorted() {
                try txn.delete(meta.content, d.key)
                try txn.delete(meta.refs, d.key)
                try store.removeContent(d)
                actions.append("removed content \(d) (missing or corrupt)")
            }
        }
        _ = try removeTrashed(freed)
        for p in problems {
            switch p.kind {
            case .missingContentRecord:
                guard let d = p.digest, !lost.contains(d), let st = try Sys.lstatIfExists(store.contentPath(d)) else { continue }
                let r = try store.hashContent(d, buffer: buffer)
                guard r.digest == d else { continue }
                try meta.env.write { txn in
                    if try meta.contentRecord(txn, d) == nil {
                        let hasLink = try Sys.lstatIfExists(store.linkPath(d)) != nil
                        try meta.putContent(txn, d, ContentRecord(encodedSize: Int64(st.st_size), logicalSize: r.logicalSize,
                                                                  created: Sys.nowNanos(), hasLink: hasLink))
                    }
                }
                actions.append("recreated the record of content \(d)")
            case .missingLink, .corruptLink:
                guard let d = p.digest, !lost.contains(d), try Sys.lstatIfExists(store.contentPath(d)) != nil else { continue }
                if p.kind == .corruptLink { try Sys.unlinkIfExists(store.linkPath(d)) }
                if try Sys.lstatIfExists(store.linkPath(d)) == nil {
                    try store.materializeLink(d, buffer: buffer)
                    try meta.env.write { txn in
                        if var rec = try meta.contentRecord(txn, d), !rec.hasLink {
                            rec.hasLink = true
                            try meta.putContent(txn, d, rec)
                        }
                    }
                    actions.append("rebuilt read-only link \(d) from its content")
                }
            case .missingReference:
                guard let d = p.digest, let s = p.snapshot, !lost.contains(d) else { continue }
                try meta.env.write { txn in
                    if try txn.contains(meta.snapshots, Array(s.utf8)) { try txn.put(meta.refs, d.key, Array(s.utf8)) }
                }
                actions.append("added the reference from \(d) to \(s)")
            case .danglingReference:
                guard let d = p.digest, let s = p.snapshot else { continue }
                try meta.env.write { txn in _ = try txn.delete(meta.refs, d.key, value: Array(s.utf8)) }
                actions.append("removed the dangling reference from \(d) to \(s)")
            default: break
            }
        }
        for a in actions { Log.warn("verify --repair \(root): \(a)") }
        return actions
    }
}
