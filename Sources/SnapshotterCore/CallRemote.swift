import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
import SnapshotterRemote
/// A call's own registry and content transport: they replace the store's
/// for one snapshot or restore (the Go API's per-call options), so calls
/// with different settings run side by side.
public struct CallRemote: Sendable {
    let registry: (any MetadataRegistry)?
    let transport: (any ContentTransport)?
}

extension Snapshotter {
    /// Builds a call's registry and transport (nil: none for that call).
    public func callRemote(registry: RegistrySettings?, content: ContentSettings?) throws -> CallRemote {
        CallRemote(registry: try registry.map { try makeRegistry($0, maxConfigBytes: options.maxConfigBytes) },
                   transport: try content.map(makeTransport))
    }

    /// The settings a call runs with: its own, or the store's.
    func remote(_ call: CallRemote?) -> CallRemote {
        call ?? CallRemote(registry: registry, transport: transport)
    }
}
