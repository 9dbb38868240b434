import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// The transport the settings name: with a Dragonfly endpoint, Dragonfly
/// (MissingObjectStorage when no content URL names the object storage
/// behind it); otherwise the URL's scheme picks S3 or a directory.
package func makeTransport(_ settings: ContentSettings) throws -> any ContentTransport {
    if !settings.dragonflyEndpoint.isEmpty {
        if settings.url.isEmpty {
            do { _ = try GRPCTarget.parse(settings.dragonflyEndpoint) } catch let e as SnapshotterError {
                throw SnapshotterError.invalid("Dragonfly endpoint: \(e.message)")
            }
            return MissingObjectStorage(settings.dragonflyEndpoint)
        }
        return try DragonflyTransport(settings)
    }
    switch settings.scheme {
    case "file":
        return try DirectoryTransport(settings)
    case "s3":
        return try S3Transport(settings)
    default:
        throw SnapshotterError.invalid("content URL \(settings.url.debugDescription) must be s3://bucket or file:///dir (\(settings.scheme):// object storage is reached through a Dragonfly endpoint)")
    }
}
