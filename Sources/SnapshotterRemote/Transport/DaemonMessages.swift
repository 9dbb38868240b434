import SnapshotterSystem
import SnapshotterStore
import SnapshotterMetadata
/// The few Dragonfly daemon messages the transport sends and reads, encoded
/// by hand (ProtoWire) instead of by a protobuf runtime. Field numbers and
/// types are those of dragonfly-api 2.3.8 (dfdaemon.v2, common.v2) and
/// grpc.health.v1; the encodings are checked byte for byte against the
/// official Python stubs (DaemonMessagesTests). Decoding follows protobuf:
/// unknown fields are skipped, the last value of a scalar wins, a message
/// field seen twice is merged, and of the oneof the last member present wins.
package enum DaemonMessages {
    /// common.v2.ObjectStorage; an empty credential leaves its field out.
    /// region and endpoint are always sent, even empty, as the gRPC code
    /// did: the daemon refuses a request without them (INVALID_ARGUMENT
    /// "missing object storage region"; an empty string counts as present).
    package struct ObjectStorage: Sendable, Equatable {
        package var region = "", endpoint = "", accessKeyID = "", accessKeySecret = "", sessionToken = ""

        package var encoded: [UInt8] {
            var w = ProtoWire.Writer()
            w.string(1, region, present: true)
            w.string(2, endpoint, present: true)
            w.string(3, accessKeyID)
            w.string(4, accessKeySecret)
            w.string(5, sessionToken)
            return w.bytes
        }
    }

    /// grpc.health.v1.HealthCheckRequest
    package static func healthCheckRequest(service: String) -> [UInt8] {
        var w = ProtoWire.Writer()
        w.string(1, service)
        return w.bytes
    }

    package enum ServingStatus: Equatable, Sendable { case unknown, serving, notServing, serviceUnknown, other(UInt64) }

    /// grpc.health.v1.HealthCheckResponse
    package static func healthCheckResponse(_ bytes: UnsafeRawBufferPointer) throws -> ServingStatus {
        var r = ProtoWire.Reader(bytes, Schemas.health)
        var status: UInt64 = 0
        while let f = try r.next() {
            status = try r.varint(f)
        }
        switch status {
        case 0: return .unknown
        case 1: return .serving
        case 2: return .notServing
        case 3: return .serviceUnknown
        default: return .other(status)
        }
    }

    /// dfdaemon.v2.UploadPersistentTaskRequest: url, object_storage, path, persistent_replica_count, ttl (google.protobuf.Duration, left out when ttlSeconds == 0)
    package static func uploadPersistentTaskRequest(url: String, objectStorage: ObjectStorage, path: String, replicas: UInt64, ttlSeconds: Int64) -> [UInt8] {
        var w = ProtoWire.Writer()
        w.string(1, url)
        w.message(2, objectStorage.encoded)
        w.string(3, path)
        w.uint64(4, replicas)
        if ttlSeconds != 0 {
            var d = ProtoWire.Writer()
            d.int64(1, ttlSeconds)
            w.message(5, d.bytes)
        }
        return w.bytes
    }

    /// dfdaemon.v2.DownloadPersistentTaskRequest: url, object_storage, persistent, output_path, force_hard_link, need_piece_content (false fields left out, proto3 style)
    /// output_path is a proto3 `optional` field: it is always sent, as the
    /// gRPC code did (req.outputPath = output), even when empty.
    package static func downloadPersistentTaskRequest(url: String, objectStorage: ObjectStorage, outputPath: String, persistent: Bool, forceHardLink: Bool, needPieceContent: Bool) -> [UInt8] {
        var w = ProtoWire.Writer()
        w.string(1, url)
        w.message(2, objectStorage.encoded)
        w.bool(3, persistent)
        w.string(4, outputPath, present: true)
        w.bool(6, needPieceContent)
        w.bool(7, forceHardLink)
        return w.bytes
    }

    package enum DownloadResponse: Equatable, Sendable {
        case started(contentLength: UInt64)       // download_persistent_task_started_response
        case pieceFinished(length: UInt64)        // download_piece_finished_response.piece.length
        case other                                // a message with neither (unknown future fields)
    }

    /// dfdaemon.v2.DownloadPersistentTaskResponse (the oneof `response`; other fields skipped)
    package static func downloadPersistentTaskResponse(_ bytes: UnsafeRawBufferPointer) throws -> DownloadResponse {
        var r = ProtoWire.Reader(bytes, Schemas.downloadResponse)
        var out = DownloadResponse.other
        while let f = try r.next() {
            switch f.number {
            case 4:
                var started = try r.message(f, Schemas.started)
                var length: UInt64 = 0
                if case .started(let previous) = out { length = previous }
                while let g = try started.next() { length = try started.varint(g) }
                out = .started(contentLength: length)
            case 5:
                var finished = try r.message(f, Schemas.pieceFinished)
                var length: UInt64 = 0
                if case .pieceFinished(let previous) = out { length = previous }
                while let g = try finished.next() {
                    var piece = try finished.message(g, Schemas.piece)
                    while let h = try piece.next() {
                        switch h.number {
                        case 4: length = try piece.varint(h)
                        default: try piece.skip(h)
                        }
                    }
                }
                out = .pieceFinished(length: length)
            default:
                try r.skip(f)
            }
        }
        return out
    }

    /// The declared fields of the messages read (all of them, so that a
    /// known field with the wrong wire type is refused).
    package enum Schemas {
        package typealias F = ProtoWire.Field
        package static let health = ProtoWire.Schema(name: "grpc.health.v1.HealthCheckResponse", fields: [
            F(number: 1, name: "status", wire: .varint),
        ])
        package static let downloadResponse = ProtoWire.Schema(name: "dfdaemon.v2.DownloadPersistentTaskResponse", fields: [
            F(number: 1, name: "host_id", wire: .bytes),
            F(number: 2, name: "task_id", wire: .bytes),
            F(number: 3, name: "peer_id", wire: .bytes),
            F(number: 4, name: "download_persistent_task_started_response", wire: .bytes),
            F(number: 5, name: "download_piece_finished_response", wire: .bytes),
        ])
        package static let started = ProtoWire.Schema(name: "dfdaemon.v2.DownloadPersistentTaskStartedResponse", fields: [
            F(number: 1, name: "content_length", wire: .varint),
        ])
        package static let pieceFinished = ProtoWire.Schema(name: "dfdaemon.v2.DownloadPieceFinishedResponse", fields: [
            F(number: 1, name: "piece", wire: .bytes),
        ])
        package static let piece = ProtoWire.Schema(name: "common.v2.Piece", fields: [
            F(number: 1, name: "number", wire: .varint),
            F(number: 2, name: "parent_id", wire: .bytes),
            F(number: 3, name: "offset", wire: .varint),
            F(number: 4, name: "length", wire: .varint),
            F(number: 5, name: "digest", wire: .bytes),
            F(number: 6, name: "content", wire: .bytes),
            F(number: 7, name: "traffic_type", wire: .varint),
            F(number: 8, name: "cost", wire: .bytes),
            F(number: 9, name: "created_at", wire: .bytes),
        ])
    }
}
