import Foundation
import Synchronization
import Testing
@testable import USPApp
@testable import USPCore
import USPTestSupport
import USPUnix

/// The relay-free hand-off as USPApp receives it: the metadata with `relay_free`, the snapshot's
/// binary form right after the JSON, and the client's socket.
@Suite struct RelayFreeReceiverTests {
    static func json(snapshotLength: Int) -> String {
        String(sampleJSON.dropLast()) + #","relay_free":{"v":1,"snapshot_length":\#(snapshotLength)}}"#
    }

    /// A snapshot as uspd would make one (keys and counters of a connection in progress).
    static func snapshot() -> DedicatedStreamSnapshot {
        var stream = StreamState(localID: 1, peerID: 1, phase: .open, sendCredit: 20_000, receiveCredit: 16_384 - 5)
        stream.buffered = 5
        return DedicatedStreamSnapshot(
            serverSessionID: "s-test", cipher: .chaChaPoly,
            send: .init(key: [UInt8](repeating: 1, count: 32), nonce: 6, maxPlaintext: 65519, rekeyBytes: 1 << 30, bytesSinceRekey: 100, records: 3),
            receive: .init(key: [UInt8](repeating: 2, count: 32), nonce: 4, maxPlaintext: 65519, rekeyBytes: 1 << 32, bytesSinceRekey: 50, records: 2),
            padding: .none, pendingBodyLength: nil, limits: StreamLimits(maxStreams: 100, initialWindow: 16_384, maxControlFrames: 200),
            peerInitialWindow: 1 << 20, controlFramesSinceProgress: 0, lastLocalID: 1, highestPeerID: 1, stream: stream,
            unreadInput: [], undeliveredData: Array("early".utf8), unwrittenOutput: [])
    }

    func handOff(_ bytes: [UInt8], descriptor: CInt, acceptRelayFree: Bool = true) throws
        -> (result: Result<HandoffReceiver.Handoff, USPAppError>, answer: String?) {
        let control = try SocketPair.make()
        defer { close(control.first) }
        // The first bytes carry the descriptor; the rest (a snapshot larger than the socket buffer)
        // follows from another thread while the receiver reads, as uspd sends it.
        let sent = try DescriptorPassing.send(control.first, bytes: Array(bytes.prefix(64)), descriptors: [descriptor])
        // The writer is waited for before `control.first` is closed: a shutdown of a closed (and
        // maybe reused) descriptor number would cut another test's socket.
        let writeError = Mutex<UnixError?>(nil)
        let written = DispatchSemaphore(value: 0)
        let writer = Thread {
            do throws(UnixError) { try StreamIO.writeAll(control.first, Array(bytes[sent...])) } catch { writeError.withLock { $0 = error } }
            shutdown(control.first, CInt(SHUT_WR))
            written.signal()
        }
        writer.start()
        defer { written.wait() }
        let result: Result<HandoffReceiver.Handoff, USPAppError>
        do throws(USPAppError) {
            result = .success(try HandoffReceiver.receiveHandoff(on: control.second, acceptRelayFree: acceptRelayFree))
        } catch {
            result = .failure(error)
        }
        let answer = try StreamIO.readLine(control.first, limit: 2000)
        if let error = writeError.withLock({ $0 }) { Issue.record("the test's writer failed: \(error)") }
        return (result, answer)
    }

    @Test func snapshotAfterTheJSONIsResumedBeforeOk() throws {
        let stream = try SocketPair.make()
        defer { close(stream.first) }
        let bytes = Self.snapshot().encoded()
        let (result, answer) = try handOff(handoffFrame(Self.json(snapshotLength: bytes.count)) + bytes, descriptor: stream.second)
        close(stream.second)
        #expect(answer == "ok")
        let handoff = try result.get()
        defer { close(handoff.descriptor) }
        #expect(handoff.metadata.relayFree)
        #expect(handoff.metadata.application == "upper")
        var session = try #require(handoff.relayFree)
        #expect(session.serverSessionID == "s-test")
        var delivered: [UInt8] = []
        session.resume { if case .data(let d) = $0 { delivered += d } }
        #expect(delivered == Array("early".utf8))
    }

    @Test func aLargeSnapshotArrivesWhole() throws {
        let stream = try SocketPair.make()
        defer { close(stream.first); close(stream.second) }
        var s = Self.snapshot()
        s.unwrittenOutput = [UInt8](repeating: 7, count: 600_000)
        let bytes = s.encoded()
        let (result, answer) = try handOff(handoffFrame(Self.json(snapshotLength: bytes.count)) + bytes, descriptor: stream.second)
        #expect(answer == "ok")
        var session = try #require(try result.get().relayFree)
        #expect(session.outboundByteCount == 600_000)
        close(try result.get().descriptor)
    }

    @Test(arguments: [
        ("a snapshot that does not decode", Self.json(snapshotLength: 8), Array("USPSxxxx".utf8), "malformed_snapshot"),
        ("relay_free without a length", String(sampleJSON.dropLast()) + #","relay_free":{"v":1}}"#, [], "malformed_snapshot"),
        ("relay_free version 2", String(sampleJSON.dropLast()) + #","relay_free":{"v":2,"snapshot_length":3}}"#, [], "malformed_snapshot"),
        ("a snapshot cut short", Self.json(snapshotLength: 100), Array(Self.snapshot().encoded().prefix(40)), "malformed_snapshot"),
    ])
    func badRelayFreeHandOffsAreRefusedAndTheSocketClosed(_ label: String, _ json: String, _ tail: [UInt8], _ code: String) throws {
        let stream = try SocketPair.make()
        defer { close(stream.first) }
        let (result, answer) = try handOff(handoffFrame(json) + tail, descriptor: stream.second)
        close(stream.second)
        guard case .failure(let error) = result else { Issue.record("\(label): accepted"); return }
        #expect(error.code.rawValue == code, "\(label): \(error)")
        #expect(answer?.hasPrefix("error \(code): ") == true, "\(label): \(answer ?? "nil")")
        var byte: UInt8 = 0
        #expect(read(stream.first, &byte, 1) == 0, "\(label): descriptor not closed")
    }

    @Test func theRelayedOnlyReceiverRefusesRelayFree() throws {
        let stream = try SocketPair.make()
        defer { close(stream.first) }
        let bytes = Self.snapshot().encoded()
        let (result, answer) = try handOff(handoffFrame(Self.json(snapshotLength: bytes.count)) + bytes, descriptor: stream.second,
                                          acceptRelayFree: false)
        close(stream.second)
        guard case .failure(let error) = result else { Issue.record("accepted"); return }
        #expect(error.code == .relayFreeUnsupported)
        #expect(answer?.hasPrefix("error relay_free_unsupported") == true)
    }
}
