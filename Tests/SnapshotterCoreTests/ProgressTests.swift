import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

/// Progress events only move forward and end with the totals; a handler
/// that returns false cancels the operation, which then records nothing.
@Suite("Progress and cancellation")
struct ProgressTests {
    /// Files of a few sizes, sparse included; returns the requests and the
    /// total logical size.
    static func makeWorkload(_ fx: Fixture) throws -> ([FileRequest], Int64) {
        var files: [FileRequest] = []
        var total: Int64 = 0
        for i in 0..<12 {
            let size = (i + 1) * 700_000
            try writeFile(fx.base + "/f\(i).bin", patternBytes(size, seed: UInt64(i)), mode: 0o644)
            files.append(FileRequest("f\(i).bin", readOnly: i % 3 == 0))
            total += Int64(size)
        }
        try writeSparseFile(fx.base + "/sparse.bin", size: 64 << 20, data: [(32 << 20, patternBytes(1 << 20, seed: 77))])
        files.append(FileRequest("sparse.bin"))
        total += 64 << 20
        return (files, total)
    }

    /// Records events and checks that the handler is never entered twice at once.
    final class Recorder: Sendable {
        let events = Collector<ProgressEvent>()
        let inside = Atomic<Int>(0)
        let overlapped = AtomicFlag()
        let stopWhen: @Sendable (ProgressEvent) -> Bool

        init(stopWhen: @escaping @Sendable (ProgressEvent) -> Bool = { _ in false }) { self.stopWhen = stopWhen }

        var handler: ProgressHandler {
            { [self] e in
                if inside.add(1, ordering: .sequentiallyConsistent).newValue > 1 { overlapped.set() }
                defer { inside.subtract(1, ordering: .sequentiallyConsistent) }
                events.append(e)
                return !stopWhen(e)
            }
        }
    }

    static func expectMonotonic(_ events: [ProgressEvent], files: Int64, bytes: Int64,
                                sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(events.count >= 2, sourceLocation: sourceLocation)
        for (a, b) in zip(events, events.dropFirst()) {
            #expect(b.phase.rawValue >= a.phase.rawValue, "phase went from \(a.phase) to \(b.phase)", sourceLocation: sourceLocation)
            #expect(b.filesDone >= a.filesDone && b.bytesDone >= a.bytesDone, "\(a) -> \(b)", sourceLocation: sourceLocation)
            #expect(b.filesTotal >= a.filesTotal && b.bytesTotal >= a.bytesTotal, "\(a) -> \(b)", sourceLocation: sourceLocation)
        }
        for e in events {
            #expect(e.filesDone <= e.filesTotal && e.bytesDone <= e.bytesTotal, "\(e)", sourceLocation: sourceLocation)
        }
        let last = events.last
        #expect(last?.phase == .done, sourceLocation: sourceLocation)
        #expect(last?.filesDone == files && last?.filesTotal == files, sourceLocation: sourceLocation)
        #expect(last?.bytesDone == bytes && last?.bytesTotal == bytes, sourceLocation: sourceLocation)
        #expect(events.filter { $0.phase == .done }.count == 1, "one final event", sourceLocation: sourceLocation)
    }

    @Test("snapshot, restore and verify progress is monotonic and ends with the totals")
    func progressIsMonotonicAndEndsWithTotals() async throws {
        try await withFixture { fx in
            let (files, total) = try Self.makeWorkload(fx)
            try await withStore(fx) { store in
                let snap = Recorder()
                let report = try await store.snapshot(SnapshotRequest(name: "prog", version: "1", baseDir: fx.base, files: files),
                                                      progress: snap.handler)
                Self.expectMonotonic(snap.events.values, files: Int64(files.count), bytes: total)
                #expect(snap.events.values.contains { $0.phase == .storing })
                #expect(!snap.overlapped.isSet, "the handler was entered concurrently")
                #expect(report.info.totalSize == total)

                let restore = Recorder()
                _ = try await store.restore(RestoreRequest(name: "prog", version: "1", outputDir: fx.output()), progress: restore.handler)
                Self.expectMonotonic(restore.events.values, files: Int64(files.count), bytes: total)
                #expect(restore.events.values.contains { $0.phase == .exporting })
                #expect(!restore.overlapped.isSet)

                let verify = Recorder()
                let v = try await store.verify(progress: verify.handler)
                Self.expectMonotonic(verify.events.values, files: Int64(v.contentFilesChecked), bytes: v.bytesChecked)
            }
        }
    }

    /// When the handler says stop.
    enum StopPoint: String, CaseIterable, Sendable {
        case firstEvent, midStoring, committing
    }

    @Test("returning false from the progress handler cancels the snapshot with .canceled and records nothing",
          arguments: StopPoint.allCases)
    func handlerCancelsSnapshot(_ stop: StopPoint) async throws {
        try await withFixture { fx in
            let (files, _) = try Self.makeWorkload(fx)
            try await withStore(fx) { store in
                let recorder = Recorder { e in
                    switch stop {
                    case .firstEvent: return true
                    case .midStoring: return e.phase == .storing && e.bytesDone > 0
                    case .committing: return e.phase == .committing
                    }
                }
                // Even at the committing event nothing is recorded yet, so
                // the request to stop can still be honoured.
                await expectError(.canceled, "stopped at \(stop)") {
                    try await store.snapshot(SnapshotRequest(name: "cancel", version: "1", baseDir: fx.base, files: files),
                                             progress: recorder.handler)
                }
                #expect(recorder.events.values.contains { recorder.stopWhen($0) }, "the stop point was reached")
                #expect(!recorder.events.values.contains { $0.phase == .done }, "no final event after a cancel")
                #expect(try await store.list() == [])
                await expectError(.notFound) { try await store.info(name: "cancel", version: "1") }
                #expect(try fx.storageTemps() == [], "no temporary file is left in the store")
                if stop == .firstEvent {
                    #expect(try fx.contentFiles() == [], "nothing was stored before the first event")
                }
                #expect(store.activeOperations == 0)
                // The content the canceled run stored is taken up by the next one.
                _ = try await store.snapshot(SnapshotRequest(name: "cancel", version: "2", baseDir: fx.base, files: files))
                #expect(try await store.verify().problems == [])
            }
        }
    }

    @Test("returning false from the progress handler cancels a restore with .canceled")
    func handlerCancelsRestore() async throws {
        try await withFixture { fx in
            let (files, _) = try Self.makeWorkload(fx)
            try await withStore(fx) { store in
                _ = try await store.snapshot(SnapshotRequest(name: "rc", version: "1", baseDir: fx.base, files: files))
                let recorder = Recorder { $0.phase == .exporting && $0.bytesDone > 0 }
                let out = fx.output()
                await expectError(.canceled) {
                    try await store.restore(RestoreRequest(name: "rc", version: "1", outputDir: out), progress: recorder.handler)
                }
                #expect(try allFiles(under: out).filter(isTempName) == [], "no temporary file is left in the output")
                let infos = try await store.info(name: "rc", version: "1")
                for rel in try allFiles(under: out) {
                    let f = try #require(infos.files.first { $0.relativePath == rel })
                    #expect(try spf1Digest(out + "/" + rel) == f.digest, "a file under its final name is complete")
                }
            }
        }
    }

    @Test("a cancellation flag and task cancellation both stop a snapshot with .canceled")
    func flagAndTaskCancellation() async throws {
        try await withFixture { fx in
            let (files, _) = try Self.makeWorkload(fx)
            try await withStore(fx) { store async throws in
                let flag = CancellationFlag()
                flag.cancel()
                await expectError(.canceled) {
                    try await store.snapshot(SnapshotRequest(name: "flag", version: "1", baseDir: fx.base, files: files), cancel: flag)
                }
                // The handler holds the work at its first storing event until
                // the task has been canceled, so the cancel lands mid-way.
                let (reached, reachedContinuation) = AsyncStream<Void>.makeStream()
                let released = Latch()
                let hold: ProgressHandler = { e in
                    if e.phase == .storing && e.bytesDone > 0 && !released.isSet {
                        reachedContinuation.yield()
                        released.wait()
                    }
                    return true
                }
                let task = Task {
                    // Should the hold point never come, the wait below ends anyway.
                    defer { reachedContinuation.finish() }
                    return try await store.snapshot(SnapshotRequest(name: "flag", version: "2", baseDir: fx.base, files: files), progress: hold)
                }
                var waiter = reached.makeAsyncIterator()
                _ = await waiter.next()
                task.cancel()
                released.set()
                await expectError(.canceled) { try await task.value }
                #expect(try await store.list() == [])
                #expect(try fx.storageTemps() == [])
            }
        }
    }

    @Test("close cancels the operations in flight, waits for them, then refuses new ones")
    func closeCancelsInFlightWork() async throws {
        try await withFixture { fx in
            let (files, _) = try Self.makeWorkload(fx)
            let store = try fx.open()
            let (reached, reachedContinuation) = AsyncStream<Void>.makeStream()
            let released = Latch()
            let hold: ProgressHandler = { e in
                if e.phase == .storing && e.bytesDone > 0 && !released.isSet {
                    reachedContinuation.yield()
                    released.wait()
                }
                return true
            }
            let running = Task {
                defer { reachedContinuation.finish() }
                return try await store.snapshot(SnapshotRequest(name: "close", version: "1", baseDir: fx.base, files: files), progress: hold)
            }
            var waiter = reached.makeAsyncIterator()
            _ = await waiter.next()
            #expect(store.activeOperations == 1)
            let closing = Task { await store.close() }
            // Close has canceled what runs once it refuses new work (both
            // happen under one lock): only then is the snapshot let go.
            while true {
                do { _ = try await store.list() } catch let e as SnapshotterError where e.code == .closed { break }
                await Task.yield()
            }
            released.set()
            await closing.value
            #expect(store.activeOperations == 0, "close returned only after the snapshot stopped")
            await expectError(.canceled) { try await running.value }
            await expectError(.closed) { try await store.verify() }
            // What the canceled snapshot began is not recorded.
            let listed = try await withStore(fx) { try await $0.list() }
            #expect(listed == [])
        }
    }

    @Test("a closed store refuses new operations with .closed")
    func closedStoreRefusesWork() async throws {
        try await withFixture { fx in
            try writeFile(fx.base + "/f", "f\n")
            let store = try await Snapshotter.open(root: fx.root)
            await store.close()
            await expectError(.closed) {
                try await store.snapshot(SnapshotRequest(name: "c", version: "1", baseDir: fx.base, files: [FileRequest("f")]))
            }
            await expectError(.closed) { try await store.list() }
            #expect(store.activeOperations == 0)
        }
    }
}
