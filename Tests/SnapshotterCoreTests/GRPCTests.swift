import Testing
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

@Suite("gRPC over libcurl: targets, framing, status")
struct GRPCTests {
    @Test("Target forms gRPC clients accept; others refused with the forms named")
    func targets() throws {
        let sock = try GRPCTarget.parse("unix:///run/dfdaemon.sock")
        #expect(sock.socketPath == "/run/dfdaemon.sock" && sock.base == "http://localhost")
        #expect(try GRPCTarget.parse("unix:/run/d.sock").socketPath == "/run/d.sock")
        #expect(try GRPCTarget.parse("unix:rel.sock").socketPath == "rel.sock")
        for (t, base) in [("127.0.0.1:65000", "http://127.0.0.1:65000"), ("dns:///dfdaemon.local:4000", "http://dfdaemon.local:4000"),
                          ("dns:localhost:1", "http://localhost:1"), ("http://10.0.0.1:80/", "http://10.0.0.1:80"),
                          ("[::1]:65001", "http://[::1]:65001")] {
            let g = try GRPCTarget.parse(t)
            #expect(g.socketPath == nil && g.base == base, "\(t)")
        }
        for bad in ["", "unix://", "tcp://127.0.0.1:1", "https://h:1", "host", "host:", "host:0", "host:65536", "host:+1",
                    "ho st:1", "h/x:1", "a@b:1", ":1", "[]:1", "host:1\n", "dns:///h:1/x"] {
            #expect { _ = try GRPCTarget.parse(bad) } throws: { e in
                (e as? SnapshotterError)?.code == .invalidArgument && ((e as? SnapshotterError)?.message.contains("unix:///") ?? false)
            }
        }
    }

    /// Feeds `body` in pieces of `piece` bytes; the messages, or the error.
    func decode(_ body: [UInt8], piece: Int, max: Int = 1 << 20) -> Result<[[UInt8]], SnapshotterError> {
        var d = GRPCFrameDecoder(maxMessageBytes: max)
        var out: [[UInt8]] = []
        do {
            var at = 0
            while at < body.count {
                let n = min(piece, body.count - at)
                try body[at..<(at + n)].withUnsafeBytes { try d.feed($0) { out.append(Array($0)) } }
                at += n
            }
            try d.finish()
            return .success(out)
        } catch {
            return .failure(error.asSnapshotterError)
        }
    }

    @Test("Messages split anywhere are reassembled; empty messages too")
    func framing() throws {
        let messages: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 7, count: 70_000), [9]]
        let body = messages.flatMap { GRPCFrameDecoder.frame($0) }
        for piece in [1, 2, 5, 6, 4096, body.count] {
            #expect(try decode(body, piece: piece).get() == messages, "piece \(piece)")
        }
        #expect(try decode([], piece: 1).get().isEmpty)
    }

    @Test("Hostile frames are clean errors: huge length, compressed flag, truncated header or message")
    func hostileFrames() {
        func fails(_ body: [UInt8], _ words: String) {
            guard case .failure(let e) = decode(body, piece: 3, max: 1024) else {
                Issue.record("\(body.prefix(8)) was accepted")
                return
            }
            #expect(e.code == .transport && e.message.contains(words), "\(e.message)")
        }
        fails([0, 0xff, 0xff, 0xff, 0xff], "larger than")
        fails([0, 0, 0, 4, 1] + [UInt8](repeating: 0, count: 1025), "larger than")
        fails([1, 0, 0, 0, 1, 0], "compression")
        fails([0x80, 0, 0, 0, 0], "compression")
        fails([0, 0, 0], "3 of 5 header bytes")
        fails([0, 0, 0, 0, 9, 1, 2], "2 of 9 bytes")
        fails(GRPCFrameDecoder.frame([1]) + [0], "1 of 5 header bytes")
    }

    @Test("grpc-message is percent-decoded, kept printable and short; HTTP answers map to gRPC codes")
    func statusText() {
        #expect(GRPCChannel.statusMessage("persistent%20task%20not%20found") == "persistent task not found")
        #expect(GRPCChannel.statusMessage("bad%zz%4") == "bad%zz%4")
        #expect(GRPCChannel.statusMessage("a%0Ab%1B") == "a?b?")
        #expect(GRPCChannel.statusMessage(String(repeating: "x", count: 5000)).count == 515)
        #expect(GRPCStatusError.fromHTTP(503).code == GRPCStatusError.unavailable)
        #expect(GRPCStatusError.fromHTTP(404).name == "UNIMPLEMENTED")
        #expect(GRPCStatusError(code: 99, message: "m").description == "status 99: m")
    }
}
