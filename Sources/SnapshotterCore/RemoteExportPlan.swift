#if canImport(Glibc)
import Glibc
#endif
import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote

/// What a restore from remote exports, and its running counts.
final class ExportPlan: Sendable {
    let key: SnapshotKey
    let files: [SnapshotFile]
    let output: OutputDirectory
    let targets: RestoreTargets
    let uses: [Digest: [Int]]
    let overwrite: Bool
    let reporter: ProgressReporter
    let cancel: CancellationFlag
    let counts = Locked(RestoreReport(filesLinked: 0, filesCopied: 0, filesDecoded: 0, bytesWritten: 0))
    /// Files are exported as their content arrives (not when overwriting:
    /// existing files are then replaced only once everything is here).
    var pipelined: Bool { !overwrite }

    init(key: SnapshotKey, files: [SnapshotFile], output: OutputDirectory, targets: RestoreTargets, uses: [Digest: [Int]], overwrite: Bool,
         reporter: ProgressReporter, cancel: CancellationFlag) {
        self.key = key
        self.files = files
        self.output = output
        self.targets = targets
        self.uses = uses
        self.overwrite = overwrite
        self.reporter = reporter
        self.cancel = cancel
    }

    func target(_ i: Int) -> OutputDirectory.Target { targets.target(i, files[i]) }

    /// Counts an exported file (its bytes in the progress too, unless the
    /// export reported them as it went).
    func exported(_ i: Int, how: Snapshotter.ExportMethod, countBytes: Bool = true) {
        let f = files[i]
        counts.withLock { $0.count(how, size: f.size) }
        if countBytes { reporter.addBytes(f.size) }
        reporter.fileDone(copied: how == .copied)
    }
}

/// A digest whose bytes are in a temporary file of the store (and maybe
/// decoded into a temporary link or output), not yet checked or placed.
final class PendingFetch: @unchecked Sendable {
    enum Sink { case none, link(Int), output(Int) }

    let digest: Digest
    /// Replaced when the transport put another file at `tmp`.
    private(set) var fd: Int32
    /// Emptied once renamed into place.
    var tmp: String
    let sink: Sink
    let sinkFD: Int32?
    /// The sink's temporary file: in the store for a link (emptied once
    /// placed); for an output, its name (for messages) and `outputTemp`.
    var sinkTmp: String
    /// A sink's temporary file in the output; nil once placed.
    var outputTemp: OutputDirectory.Temp?
    let output: OutputDirectory
    let tap: DownloadTap

    init(_ digest: Digest, contentDir: String, permissions: StorePermissions, sink: Sink, linkDir: String,
         plan: ExportPlan) throws {
        self.digest = digest
        self.sink = sink
        output = plan.output
        tmp = ContentStore.tempPath(in: contentDir)
        fd = try Sys.open(tmp, O_RDWR | O_CREAT | O_EXCL, permissions.contentMode)
        do {
            // Content is the store's: not readable by others (its group's
            // with a store group), as ingested content is.
            if permissions.group != nil { try permissions.apply(fd, mode: permissions.contentMode, tmp) }
            switch sink {
            case .link:
                sinkTmp = ContentStore.tempPath(in: linkDir)
                sinkFD = try Sys.open(sinkTmp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            case .output(let i):
                let temp = plan.output.tempName(for: plan.target(i))
                sinkTmp = plan.output.display(temp.dir, temp.name)
                sinkFD = try plan.output.create(temp)
                outputTemp = temp
            case .none:
                sinkTmp = ""
                sinkFD = nil
            }
        } catch {
            Sys.close(fd)
            try? Sys.unlinkIfExists(tmp)
            throw error
        }
        tap = DownloadTap(SPF1.Decoder(name: tmp, to: sinkFD), file: fd)
    }

    /// Takes the file the transport put at `tmp` in place of the one
    /// created here (whose descriptor is closed), with the store's mode.
    func replaceFile(with newFD: Int32, permissions: StorePermissions) throws {
        Sys.close(fd)
        fd = newFD
        try permissions.apply(fd, mode: permissions.contentMode, tmp)
    }

    /// Closes both files and removes what was not placed.
    func discard() {
        Sys.close(fd)
        if !tmp.isEmpty { try? Sys.unlinkIfExists(tmp) }
        if let sinkFD { Sys.close(sinkFD) }
        if let outputTemp { output.remove(outputTemp) } else if !sinkTmp.isEmpty { try? Sys.unlinkIfExists(sinkTmp) }
    }
}
