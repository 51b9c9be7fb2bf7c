import Testing
@testable import USPCore
import USPTestSupport

/// Streams through a real session: open, accept, reject, data, half-close, close, reset, and
/// credit-based flow control.
@Suite struct SessionStreamTests {
    /// An established IK pair with `count` echo streams open (client ids 1…count, server ids 1…count).
    static func withStreams(_ count: Int, client: SessionConfiguration = SessionConfiguration(),
                            server: SessionConfiguration? = nil) throws -> (SessionPair, String) {
        var pair = SessionPair(.ik, client: client, server: server)
        try pair.establish()
        let token = try pair.token(1)
        for i in 1...count { #expect(try pair.client.openStream(applicationToken: token) == UInt32(i)) }
        pair.pump()
        for i in 1...count {
            #expect(pair.clientSeen.contains(.accepted(UInt32(i))))
            #expect(pair.serverSeen.contains(.opened(UInt32(i), "echo")))
        }
        return (pair, token)
    }

    static func pattern(_ n: Int, seed: UInt8 = 0) -> [UInt8] {
        (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8 &+ Int(seed)) }
    }

    @Test func openWriteBeforeAcceptAndEchoBack() throws {
        var pair = SessionPair(.xx)
        try pair.establish()
        let token = try pair.token(1)
        let stream = try pair.client.openStream(applicationToken: token)
        // Data may follow OPEN at once, up to the server's window.
        #expect(try Array("hello".utf8).withUnsafeBytes { try pair.client.write(stream: stream, $0) } == 5)
        pair.pump()
        #expect(pair.serverSeen.suffix(2) == [.opened(1, "echo"), .data(1, Array("hello".utf8))])
        #expect(pair.clientSeen.last == .accepted(stream))
        #expect(pair.grants[1]?.tokenID == (try TokenProof.tokenID(secret: token)))
        #expect(try pair.serverWrite(1, Array("world".utf8)) == 5)
        #expect(pair.clientData[stream] == Array("world".utf8))
    }

    @Test func clientHalfClosesFirst() throws {
        var (pair, _) = try Self.withStreams(1)
        try pair.clientWrite(1, [1, 2, 3])
        try pair.client.finish(stream: 1) { pair.clientSeen.append(Seen($0)) }
        pair.pump()
        #expect(pair.serverSeen.last == .finished(1))
        #expect(pair.server.openStreamCount == 1)
        // The client wrote its last byte; the server still can.
        #expect(try pair.clientWrite(1, [4]) == 0)
        #expect(try pair.serverWrite(1, [9, 9]) == 2)
        #expect(pair.clientData[1] == [9, 9])
        var serverEvents: [Seen] = []
        try pair.server.finish(stream: 1) { serverEvents.append(Seen($0)) }
        #expect(serverEvents == [.closedStream(1, .ok)])
        pair.pump()
        #expect(pair.clientSeen.suffix(2) == [.finished(1), .closedStream(1, .ok)])
        #expect(pair.server.openStreamCount == 0)
        #expect(pair.server.streamGrants[1] == nil)
        #expect(pair.serverData[1] == [1, 2, 3])
        #expect(try pair.serverWrite(1, [1]) == 0)
    }

    @Test func serverHalfClosesFirst() throws {
        var (pair, _) = try Self.withStreams(1)
        var serverEvents: [Seen] = []
        try pair.server.finish(stream: 1) { serverEvents.append(Seen($0)) }
        #expect(serverEvents.isEmpty)
        pair.pump()
        #expect(pair.clientSeen.last == .finished(1))
        #expect(try pair.serverWrite(1, [1]) == 0)
        #expect(try pair.clientWrite(1, Array("late".utf8)) == 4)
        #expect(pair.serverData[1] == Array("late".utf8))
        var clientEvents: [Seen] = []
        try pair.client.finish(stream: 1) { clientEvents.append(Seen($0)) }
        #expect(clientEvents == [.closedStream(1, .ok)])
        pair.pump()
        #expect(pair.serverSeen.suffix(2) == [.finished(1), .closedStream(1, .ok)])
        #expect(pair.server.openStreamCount == 0)
    }

    @Test func clientResetsAStream() throws {
        var (pair, _) = try Self.withStreams(2)
        var events: [Seen] = []
        try pair.client.reset(stream: 1, code: .streamRefused) { events.append(Seen($0)) }
        #expect(events == [.closedStream(1, .streamRefused)])
        // The server writes before the RESET reaches it: the client drops those bytes quietly.
        _ = try ([7, 7] as [UInt8]).withUnsafeBytes { try pair.server.write(stream: 1, $0) }
        pair.pump()
        #expect(pair.serverSeen.last == .closedStream(1, .streamRefused))
        #expect(pair.clientData[1] == nil)
        #expect(pair.client.state == .established)
        #expect(pair.server.state == .established)
        #expect(try pair.serverWrite(1, [1]) == 0)
        #expect(try pair.clientWrite(1, [1]) == 0)
        // The other stream is unaffected.
        #expect(try pair.clientWrite(2, [5]) == 1)
        #expect(pair.serverData[2] == [5])
    }

    @Test func serverResetsAStream() throws {
        var (pair, _) = try Self.withStreams(1)
        var events: [Seen] = []
        try pair.server.reset(stream: 1, code: .rateLimited) { events.append(Seen($0)) }
        #expect(events == [.closedStream(1, .rateLimited)])
        _ = try ([1] as [UInt8]).withUnsafeBytes { try pair.client.write(stream: 1, $0) }
        pair.pump()
        #expect(pair.clientSeen.last == .closedStream(1, .rateLimited))
        #expect(pair.serverData[1] == nil)
        #expect(pair.server.state == .established)
        #expect(try pair.clientWrite(1, [1]) == 0)
        // Resetting again is a no-op.
        try pair.server.reset(stream: 1, code: .rateLimited) { events.append(Seen($0)) }
        #expect(events.count == 1)
        #expect(pair.server.outboundByteCount == 0)
    }

    @Test func rejectedStreamDropsItsDataAndTheSessionGoesOn() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let stranger = TokenProof.issue(random: SeededRandom(seed: 2)).secret
        let bad = try pair.client.openStream(applicationToken: stranger)
        #expect(try Array("secret".utf8).withUnsafeBytes { try pair.client.write(stream: bad, $0) } == 6)
        pair.pump()
        #expect(pair.clientSeen.last == .rejected(bad, .tokenInvalid))
        #expect(pair.serverData.isEmpty)
        #expect(pair.server.openStreamCount == 0)
        let token = try pair.token(1)
        let good = try pair.client.openStream(applicationToken: token)
        #expect(good == bad + 1)
        try pair.clientWrite(good, [1])
        #expect(pair.serverSeen.contains(.opened(2, "echo")))
        #expect(pair.serverData[2] == [1])
    }

    /// The client gives up on a stream before the ACCEPT arrives: the server opens and closes it,
    /// the client ignores the late ACCEPT, and the session goes on.
    @Test func resetBeforeAccept() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let token = try pair.token(1)
        let stream = try pair.client.openStream(applicationToken: token)
        var events: [Seen] = []
        try pair.client.reset(stream: stream, code: .shuttingDown) { events.append(Seen($0)) }
        #expect(events == [.closedStream(stream, .shuttingDown)])
        pair.pump()
        #expect(pair.serverSeen.suffix(2) == [.opened(1, "echo"), .closedStream(1, .shuttingDown)])
        #expect(!pair.clientSeen.contains(.accepted(stream)))
        #expect(pair.client.state == .established)
        #expect(pair.server.openStreamCount == 0)
        let next = try pair.client.openStream(applicationToken: token)
        try pair.clientWrite(next, [1])
        #expect(pair.serverData[2] == [1])
    }

    /// FIN right after OPEN, before the ACCEPT: a request with no body.
    @Test func finBeforeAccept() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let token = try pair.token(1)
        let stream = try pair.client.openStream(applicationToken: token)
        _ = try ([1, 2] as [UInt8]).withUnsafeBytes { try pair.client.write(stream: stream, $0) }
        try pair.client.finish(stream: stream) { _ in }
        pair.pump()
        #expect(pair.serverSeen.suffix(3) == [.opened(1, "echo"), .data(1, [1, 2]), .finished(1)])
        #expect(try pair.serverWrite(1, [3]) == 1)
        var events: [Seen] = []
        try pair.server.finish(stream: 1) { events.append(Seen($0)) }
        #expect(events == [.closedStream(1, .ok)])
        pair.pump()
        #expect(pair.clientSeen.suffix(4) == [.accepted(stream), .data(stream, [3]), .finished(stream), .closedStream(stream, .ok)])
    }

    /// Revocation from elsewhere in the server (`revoke(tokenIDs:)`) ends the streams of those
    /// tokens, and of application tokens issued under them.
    @Test func revokeFromTheServer() throws {
        var (pair, authToken) = try SessionMessageFlowTests.loggedIn()
        let echo = try pair.token(1)
        let ssh = try pair.token(3, ["user": "root"])
        let a = try pair.client.openStream(applicationToken: echo)
        let b = try pair.client.openStream(applicationToken: ssh)
        pair.pump()
        var events: [Seen] = []
        try pair.server.revoke(tokenIDs: [try TokenProof.tokenID(secret: echo)]) { events.append(Seen($0)) }
        #expect(events == [.closedStream(1, .tokenRevoked)])
        pair.pump()
        #expect(pair.clientSeen.last == .closedStream(a, .tokenRevoked))
        // Revoking the authorization token ends the ssh stream issued under it (echo was issued under it too).
        try pair.server.revoke(tokenIDs: [try TokenProof.tokenID(secret: authToken)]) { events.append(Seen($0)) }
        #expect(events.last == .closedStream(2, .tokenRevoked))
        pair.pump()
        #expect(pair.clientSeen.last == .closedStream(b, .tokenRevoked))
        #expect(pair.server.openStreamCount == 0)
        #expect(pair.server.state == .established)
    }

    // MARK: - Flow control

    @Test func writeTakesOnlyTheCredit() throws {
        var (pair, _) = try Self.withStreams(1)
        let window = Int(SessionConfiguration().streamWindow)
        let payload = Self.pattern(2 * window)
        let first = try payload.withUnsafeBytes { try pair.client.write(stream: 1, $0) }
        #expect(first == window)
        #expect(try payload.withUnsafeBytes { try pair.client.write(stream: 1, $0) } == 0)
        pair.pump()
        #expect(pair.serverData[1] == Array(payload[0..<window]))

        // Less than half the window consumed: no WINDOW yet.
        try pair.server.consumed(stream: 1, count: window / 2 - 1)
        #expect(pair.server.outboundByteCount == 0)
        // Half: WINDOW for everything consumed so far.
        try pair.server.consumed(stream: 1, count: 1)
        let records = try pair.takeServerRecordsAndDeliver()
        #expect(records.flatMap(\.frames) == [.window(stream: 1, increment: UInt32(window / 2))])
        #expect(pair.clientSeen.last == .writable(1))
        let rest = Array(payload[window...])
        #expect(try pair.clientWrite(1, rest) == window / 2)
        #expect(pair.serverData[1]!.count == window + window / 2)
        #expect(pair.serverData[1]! == Array(payload[0..<(window + window / 2)]))
    }

    @Test func serverWriteTakesOnlyTheClientsCredit() throws {
        var config = SessionConfiguration()
        config.streamWindow = 16_384
        var (pair, _) = try Self.withStreams(1, client: config, server: SessionConfiguration())
        let payload = Self.pattern(50_000)
        #expect(try payload.withUnsafeBytes { try pair.server.write(stream: 1, $0) } == 16_384)
        pair.pump()
        #expect(pair.clientData[1] == Array(payload[0..<16_384]))
        try pair.client.consumed(stream: 1, count: 8_192)
        pair.pump()
        #expect(pair.serverSeen.last == .writable(1))
        #expect(try pair.serverWrite(1, Array(payload[16_384...])) == 8_192)
    }

    /// One stream the server never reads does not stop another on the same session, in either
    /// direction: each stalls only itself.
    @Test func aStalledStreamDoesNotBlockAnother() throws {
        var config = SessionConfiguration()
        config.streamWindow = 16_384
        var (pair, _) = try Self.withStreams(2, client: config, server: config)
        let stalled = Self.pattern(40_000, seed: 1)
        let flowing = Self.pattern(200_000, seed: 2)
        // Client → server.
        #expect(try pair.clientWrite(1, stalled) == 16_384)
        var sent = 0
        var consumed = 0
        for _ in 0..<200 where sent < flowing.count {
            sent += try pair.clientWrite(2, Array(flowing[sent...]))
            #expect(try pair.clientWrite(1, stalled) == 0)
            let delivered = pair.serverData[2]?.count ?? 0
            if delivered > consumed { try pair.server.consumed(stream: 2, count: delivered - consumed); consumed = delivered }
            pair.pump()
        }
        #expect(pair.serverData[2] == flowing)
        #expect(pair.serverData[1] == Array(stalled[0..<16_384]))

        // Server → client, with the client never reading stream 2.
        #expect(try pair.serverWrite(2, stalled) == 16_384)
        sent = 0
        consumed = 0
        for _ in 0..<200 where sent < flowing.count {
            sent += try pair.serverWrite(1, Array(flowing[sent...]))
            let delivered = pair.clientData[1]?.count ?? 0
            if delivered > consumed { try pair.client.consumed(stream: 1, count: delivered - consumed); consumed = delivered }
            pair.pump()
        }
        #expect(pair.clientData[1] == flowing)
        #expect(pair.clientData[2] == Array(stalled[0..<16_384]))
        #expect(pair.client.state == .established)
        #expect(pair.server.state == .established)
    }

    /// The server never holds more unconsumed bytes of a stream than its window, however the
    /// application reads: delivered minus consumed stays within it, and all bytes arrive in order.
    @Test(arguments: [UInt64(1), 2, 3])
    func bufferedBytesStayUnderTheWindow(seed: UInt64) throws {
        var config = SessionConfiguration()
        config.streamWindow = 16_384
        var (pair, _) = try Self.withStreams(1, server: config)
        let payload = Self.pattern(120_000, seed: UInt8(seed))
        let rng = SeededRandom(seed: seed)
        var sent = 0
        var consumed = 0
        var maxBuffered = 0
        for _ in 0..<2_000 where consumed < payload.count {
            if sent < payload.count {
                let chunk = 1 + Int(rng.bytes(2).withUnsafeBytes { $0.load(as: UInt16.self) }) % 30_000
                sent += try pair.clientWrite(1, Array(payload[sent..<min(payload.count, sent + chunk)]))
            }
            let delivered = pair.serverData[1]?.count ?? 0
            maxBuffered = max(maxBuffered, delivered - consumed)
            #expect(delivered - consumed <= 16_384)
            // The application reads a random part of what it holds.
            let holding = delivered - consumed
            if holding > 0 {
                let take = 1 + Int(rng.bytes(1)[0]) * holding / 256
                try pair.server.consumed(stream: 1, count: take)
                consumed += take
                pair.pump()
            }
        }
        #expect(consumed == payload.count)
        #expect(pair.serverData[1] == payload)
        #expect(maxBuffered == 16_384)  // the window was used in full at least once
        #expect(pair.server.state == .established)
    }

    /// DATA beyond the credit the server gave is a flow-control violation.
    @Test func dataBeyondCreditIsAViolation() throws {
        var config = SessionConfiguration()
        config.streamWindow = 16_384
        var (pair, _) = try Self.withStreams(1, server: config)
        #expect(try pair.clientWrite(1, Self.pattern(16_000)) == 16_000)
        #expect(pair.server.state == .established)
        try pair.clientSends([.data(stream: 1, data: Self.pattern(385))])
        #expect(pair.serverSeen.last == .closed(.flowControl))
        #expect(pair.clientSeen.last == .closed(.flowControl))
        #expect(pair.serverData[1]?.count == 16_000)
    }

    /// Exactly the credit is fine; a byte more after it is not.
    @Test func dataUpToCreditThenOneByteMore() throws {
        var config = SessionConfiguration()
        config.streamWindow = 16_384
        var (pair, _) = try Self.withStreams(1, server: config)
        try pair.clientSends([.data(stream: 1, data: Self.pattern(16_384))])
        #expect(pair.server.state == .established)
        try pair.clientSends([.data(stream: 1, data: [0])])
        #expect(pair.serverSeen.last == .closed(.flowControl))
    }

    @Test func dataFromServerBeyondCreditIsAViolation() throws {
        var config = SessionConfiguration()
        config.streamWindow = 16_384
        var (pair, _) = try Self.withStreams(1, client: config, server: SessionConfiguration())
        try pair.serverSends([.data(stream: 1, data: Self.pattern(16_385))])
        #expect(pair.clientSeen.last == .closed(.flowControl))
        #expect(pair.serverSeen.last == .closed(.closedByPeer))
    }

    /// Stream data survives the record layer's splitting: every size around a record boundary.
    @Test func dataAroundRecordBoundaries() throws {
        var (pair, _) = try Self.withStreams(1)
        var expected: [UInt8] = []
        var consumed = 0
        for n in [1, 65_511, 65_512, 65_513, 65_519, 65_520, 131_040, 100] {
            let chunk = Self.pattern(n, seed: UInt8(n % 251))
            var sent = 0
            while sent < chunk.count {
                sent += try pair.clientWrite(1, Array(chunk[sent...]))
                let delivered = pair.serverData[1]?.count ?? 0
                try pair.server.consumed(stream: 1, count: delivered - consumed)
                consumed = delivered
                pair.pump()
            }
            expected += chunk
        }
        #expect(pair.serverData[1] == expected)
        #expect(try pair.clientRecords().allSatisfy { $0.length <= RecordLayout.maxPlaintext })
    }
}

extension SessionPair {
    /// Drains the server's output, opens it, and delivers it to the client.
    mutating func takeServerRecordsAndDeliver() throws -> [TappedRecord] {
        var tap = RecordTap(receiving: try #require(client.handshake).transport.receive, startingAt: UInt64(try serverRecords().count))
        let bytes = server.drainOutbound { Array($0) }
        let records = try tap.feed(bytes)
        deliverToClient(bytes)
        return records
    }
}
