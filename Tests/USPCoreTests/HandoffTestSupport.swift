import Testing
@testable import USPCore
import USPTestSupport

/// What a `DedicatedStreamSession` reported, owned, for assertions.
enum AppSeen: Equatable {
    case data([UInt8])
    case finished
    case writable
    case streamClosed(USPError.Code)
    case closed(USPError.Code?)

    init(_ e: DedicatedStreamSession.Action) {
        switch e {
        case .data(let d): self = .data(Array(d))
        case .finished: self = .finished
        case .writable: self = .writable
        case .streamClosed(let c): self = .streamClosed(c)
        case .closed(let e): self = .closed(e?.code)
        }
    }
}

/// A real client and the application side after a relay-free hand-off, joined in memory. The
/// wire of each direction is logged from the very first byte, so records sent before the hand-off
/// can be replayed after it.
struct RelayFreePair {
    var client: ClientSession
    var app: DedicatedStreamSession
    let stream: UInt32 = 1
    var clientSeen: [Seen]
    var appSeen: [AppSeen] = []
    var clientData: [UInt8]
    var appData: [UInt8] = []
    var toAppWire: [UInt8]
    var toClientWire: [UInt8]
    /// Give credit back as soon as bytes arrive (as an application reading everything would).
    var clientConsumes = true
    var appConsumes = true
    let now: Timestamp

    /// Takes over from `pair` (a dedicated connection) at this moment: whatever the server had
    /// delivered stays undelivered in the snapshot, `unreadInput` is what the shell read meanwhile.
    init(from pair: SessionPair, unreadInput: [UInt8] = []) throws {
        var pair = pair
        let snapshot = try pair.server.beginHandoff(undeliveredData: pair.serverData[1] ?? [], unreadInput: unreadInput)
        // It travels in its binary form.
        let decoded = try DedicatedStreamSnapshot(encoded: snapshot.encoded())
        #expect(decoded == snapshot)
        var acknowledged: [Seen] = []
        pair.server.handoffAcknowledged { acknowledged.append(Seen($0)) }
        #expect(acknowledged == [.closed(nil)])
        #expect(pair.server.outboundByteCount == 0)
        client = pair.client
        clientSeen = pair.clientSeen
        clientData = pair.clientData[1] ?? []
        toAppWire = pair.toServerWire
        toClientWire = pair.toClientWire
        now = pair.now
        app = try DedicatedStreamSession(resuming: decoded)
        var seen: [AppSeen] = []
        var data: [UInt8] = []
        app.resume { e in
            seen.append(AppSeen(e))
            if case .data(let d) = e { data += d }
        }
        noteApp(seen, data)
    }

    private mutating func noteApp(_ seen: [AppSeen], _ data: [UInt8]) {
        appSeen += seen
        appData += data
        if appConsumes, !data.isEmpty { try! app.consumed(count: data.count) }
    }

    mutating func deliverToApp(_ bytes: [UInt8]) {
        toAppWire += bytes
        var seen: [AppSeen] = []
        var data: [UInt8] = []
        app.receive(bytes) { e in
            seen.append(AppSeen(e))
            if case .data(let d) = e { data += d }
        }
        noteApp(seen, data)
    }

    mutating func deliverToClient(_ bytes: [UInt8]) {
        toClientWire += bytes
        var seen: [Seen] = []
        var data: [UInt8] = []
        client.receive(bytes, now: now, delegate: TrustAnyServerKey()) { e in
            seen.append(Seen(e))
            if case .streamData(_, let d) = e { data += d }
        }
        clientSeen += seen
        clientData += data
        if clientConsumes, !data.isEmpty { try! client.consumed(stream: stream, count: data.count) }
    }

    /// Moves bytes both ways until neither side has anything to send.
    mutating func pump() {
        for _ in 0..<10_000 {
            var moved = false
            if client.outboundByteCount > 0 { deliverToApp(client.drainOutbound { Array($0) }); moved = true }
            if app.outboundByteCount > 0 { deliverToClient(app.drainOutbound { Array($0) }); moved = true }
            if !moved { return }
        }
        Issue.record("pump did not settle")
    }

    /// Writes all of `bytes` from the application, waiting for credit as a shell would.
    mutating func appWritesAll(_ bytes: [UInt8]) throws {
        var offset = 0
        var rounds = 0
        while offset < bytes.count {
            offset += try bytes[offset...].withUnsafeBytes { try app.write($0) }
            pump()
            rounds += 1
            guard rounds < 10_000 else { Issue.record("no credit"); return }
        }
    }

    mutating func clientWritesAll(_ bytes: [UInt8]) throws {
        var offset = 0
        var rounds = 0
        while offset < bytes.count {
            offset += try bytes[offset...].withUnsafeBytes { try client.write(stream: stream, $0) }
            pump()
            rounds += 1
            guard rounds < 10_000 else { Issue.record("no credit"); return }
        }
    }

    /// The records the application sent, opened with a copy of the client's initial receiving key
    /// (following REKEY), from the first record the server ever sent.
    func appRecords() throws -> [TappedRecord] {
        var tap = RecordTap(receiving: try #require(client.handshake).transport.receive)
        return try tap.feed(Array(toClientWire.dropFirst(HandshakeLayout.message2Length)))
    }
}
