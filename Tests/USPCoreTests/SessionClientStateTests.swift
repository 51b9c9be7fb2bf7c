import Testing
@testable import USPCore
import USPTestSupport

/// Every transition of `ClientSession.State`, and what a client does with input a server may not send.
@Suite struct SessionClientStateTests {
    @Test(arguments: [HandshakeLayout.Pattern.xx, .ik, .nk])
    func idleToEstablished(pattern: HandshakeLayout.Pattern) throws {
        var pair = SessionPair(pattern)
        #expect(pair.client.state == .idle)
        #expect(pair.client.pattern == pattern)
        try pair.start()
        #expect(pair.client.state == .awaitingMessage2)
        #expect(pair.client.outboundByteCount == HandshakeLayout.message1Length)
        pair.deliverToServer(pair.client.drainOutbound { Array($0) })

        // Message 2 in pieces: the client waits for all 160 bytes.
        let flight = pair.server.drainOutbound { Array($0) }
        pair.deliverToClient(Array(flight[0..<159]))
        #expect(pair.client.state == .awaitingMessage2)
        #expect(pair.client.handshake == nil)
        #expect(pair.clientSeen.isEmpty)
        pair.deliverToClient(Array(flight[159..<HandshakeLayout.message2Length]))
        #expect(pair.client.state == .awaitingReply)
        #expect(pair.clientSeen == [.handshake(pattern, early: pattern != .xx)])
        #expect(pair.client.handshake?.remoteStatic == SessionPair.serverKey.publicKey)
        #expect(pair.client.menu == nil)

        // The rest of the flight (IK/NK: the menu already) or the next flights (XX).
        pair.deliverToClient(Array(flight[HandshakeLayout.message2Length...]))
        pair.pump()
        #expect(pair.client.state == .established)
        #expect(pair.client.menu?.applications.keys.map(\.rawValue).sorted() == [1, 2])
        #expect(pair.client.serverSessionID == pair.server.serverSessionID)
        #expect(pair.client.handshake?.handshakeHash == pair.server.handshake?.handshakeHash)
    }

    @Test func applicationReplyEstablishes() throws {
        let policy = TestPolicy()
        let token = try SessionServerStateTests.echoToken(policy)
        var pair = SessionPair(.xx, policy: policy, seed: 8)
        try pair.start(ClientStart(application: .init(token: token)))
        pair.deliverToServer(pair.client.drainOutbound { Array($0) })
        pair.deliverToClient(pair.server.drainOutbound { Array($0) })
        #expect(pair.client.state == .awaitingReply)
        #expect(pair.client.applicationStream == 1)
        pair.pump()
        #expect(pair.client.state == .established)
        #expect(pair.clientSeen.suffix(2) == [.accepted(1), .appReply("begin")])
        #expect(pair.client.menu == nil)
    }

    /// XX first contact: a delegate that refuses the server's key ends the session before
    /// message 3, so the client never proves its identity to an unknown server.
    @Test func refusedServerKeyNeverSendsMessage3() throws {
        var pair = SessionPair(.xx)
        pair.clientDelegate = RefuseServerKey()
        try pair.start()
        pair.deliverToServer(pair.client.drainOutbound { Array($0) })
        pair.deliverToClient(pair.server.drainOutbound { Array($0) })
        #expect(pair.client.state == .closed)
        #expect(pair.clientSeen == [.closed(.serverKeyMismatch)])
        #expect(pair.client.outboundByteCount == 0)
        #expect(pair.client.handshake == nil)
        // The server waits for message 3 until its deadline.
        #expect(pair.server.state == .awaitingMessage3)
        var seen: [Seen] = []
        pair.server.handshakeDeadlinePassed { seen.append(Seen($0)) }
        #expect(seen == [.closed(.handshakeTimeout)])
    }

    @Test(arguments: [HandshakeLayout.Pattern.xx, .ik, .nk])
    func serverClosesDuringHandshake(pattern: HandshakeLayout.Pattern) throws {
        var pair = SessionPair(pattern)
        try pair.start()
        _ = pair.client.drainOutbound { Array($0) }
        pair.clientEndOfInput()
        #expect(pair.client.state == .closed)
        #expect(pair.clientSeen == [.closed(.unexpectedEOF)])
        #expect(pair.client.outboundByteCount == 0)
    }

    @Test func serverClosesDuringMessage2() throws {
        var pair = SessionPair(.ik)
        try pair.start()
        pair.deliverToServer(pair.client.drainOutbound { Array($0) })
        pair.deliverToClient(Array(pair.server.drainOutbound { Array($0) }.prefix(80)))
        pair.clientEndOfInput()
        #expect(pair.clientSeen == [.closed(.unexpectedEOF)])
        #expect(pair.client.outboundByteCount == 0)
    }

    @Test func serverClosesTCPWithoutClose() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        pair.clientEndOfInput()
        #expect(pair.clientSeen.last == .closed(.unexpectedEOF))
        #expect(pair.client.outboundByteCount == 0)
    }

    @Test func serverClosesTCPInsideARecord() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let token = try pair.token(1)
        let stream = try pair.client.openStream(applicationToken: token)
        pair.pump()
        _ = try Array("abc".utf8).withUnsafeBytes { try pair.server.write(stream: 1, $0) }
        let record = pair.server.drainOutbound { Array($0) }
        pair.deliverToClient(Array(record.prefix(10)))  // inside the header
        pair.clientEndOfInput()
        #expect(pair.clientSeen.last == .closed(.recordTruncated))
        #expect(pair.clientData[stream] == nil)
        pair.pump()
        #expect(pair.serverSeen.last == .closed(.closedByPeer))
    }

    @Test func garbageMessage2() throws {
        var pair = SessionPair(.ik)
        try pair.start()
        _ = pair.client.drainOutbound { Array($0) }
        pair.deliverToClient(SeededRandom(seed: 3).bytes(HandshakeLayout.message2Length))
        #expect(pair.clientSeen == [.closed(.handshakeDecryptFailed)])
        #expect(pair.client.outboundByteCount == 0)
    }

    /// IK to a server with another key that allows first contact: it answers as XX, which the
    /// client cannot read.
    @Test func ikAtAServerWithAnotherKey() throws {
        let other = try KeyPair(privateKey: [UInt8](repeating: 8, count: 32))
        var pair = SessionPair(mode: .knownServer(serverKey: other.publicKey, clientStatic: SessionPair.clientKey))
        try pair.start()
        pair.pump()
        #expect(pair.clientSeen == [.closed(.handshakeDecryptFailed)])
        #expect(pair.server.state == .awaitingMessage3)
        #expect(pair.toServerWire.count == HandshakeLayout.message1Length)
    }

    @Test func bytesBeforeStart() throws {
        var client = try ClientSession(mode: SessionPair.mode(.ik), random: SeededRandom(seed: 1))
        var seen: [Seen] = []
        client.receive([1, 2, 3], now: Timestamp(seconds: 1), delegate: TrustAnyServerKey()) { seen.append(Seen($0)) }
        #expect(seen == [.closed(.unexpectedMessage)])
        #expect(client.state == .closed)
        #expect(client.outboundByteCount == 0)
    }

    @Test func clientCloseBeforeHandshakeSendsNothing() throws {
        var pair = SessionPair(.ik)
        try pair.start()
        _ = pair.client.drainOutbound { Array($0) }
        pair.client.close(code: .shuttingDown) { pair.clientSeen.append(Seen($0)) }
        #expect(pair.clientSeen == [.closed(.shuttingDown)])
        #expect(pair.client.outboundByteCount == 0)
    }

    // MARK: - What a server may not send

    static let illegalFromServer: [(frames: [Frame], code: USPError.Code)] = [
        ([.open(stream: 1, session: [])], .unexpectedMessage),
        ([.accept(opener: 7, acceptor: 1)], .unknownStream),
        ([.reject(opener: 7, code: 0, message: "")], .unknownStream),
        ([.data(stream: 5, data: [1])], .unknownStream),
        ([.fin(stream: 5)], .unknownStream),
        ([.message(kind: 0, json: [])], .malformedMessage),
    ]

    @Test(arguments: 0..<illegalFromServer.count)
    func illegalFramesFromServer(index: Int) throws {
        let (frames, code) = Self.illegalFromServer[index]
        var pair = SessionPair(.ik)
        try pair.establish()
        try pair.serverSends(frames)
        #expect(pair.client.state == .closed)
        #expect(pair.clientSeen.last == .closed(code))
        // The client says why, and the server learns it was closed by its peer.
        #expect(pair.serverSeen.last == .closed(.closedByPeer))
        let close = try #require(try pair.clientRecords().last?.frames.first)
        #expect(close == .close(code: code.wireValue, reason: code.name))
    }

    @Test func unknownFrameTypeFromServer() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        try pair.server._sendRawRecord([0xEE, 0, 0])
        pair.pump()
        #expect(pair.clientSeen.last == .closed(.unknownFrameType))
    }

    static let clientOnlyMessages: [SessionMessage] = [
        .initialRequest(InitialRequest(clientSessionID: "c-x")),
        .serviceRequest(ServiceRequest(clientSessionID: "c-x", services: [1: [:]])),
    ]

    @Test(arguments: clientOnlyMessages)
    func clientMessagesFromServer(message: SessionMessage) throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        try pair.serverSends([try messageFrame(message)])
        #expect(pair.clientSeen.last == .closed(.unexpectedMessage))
        #expect(pair.serverSeen.last == .closed(.closedByPeer))
    }

    /// A service_reply can only answer a service_request, which needs the menu first.
    @Test func serviceReplyBeforeMenu() throws {
        var pair = SessionPair(.xx)
        try pair.handshakeWithoutInitialRequest()
        var forger = try pair.serverForger()
        pair.deliverToClient(forger.seal([try messageFrame(.serviceReply(ServiceReply(results: [1: .token("usp1.x")])))]))
        #expect(pair.clientSeen.last == .closed(.unexpectedMessage))
        #expect(pair.serviceReplies.isEmpty)
        #expect(pair.client.state == .closed)
    }

    /// The server's error message reaches the client as an event before the close.
    @Test func errorMessageThenClose() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        try pair.serverSends([try messageFrame(.error(SessionErrorMessage(.rateLimited))), .close(code: USPError.Code.rateLimited.wireValue, reason: "")])
        #expect(pair.clientSeen.suffix(2) == [.serverError(.rateLimited), .closed(.rateLimited)])
        #expect(pair.client.outboundByteCount == 0)
    }

    @Test func pingFromServerIsAnswered() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        try pair.serverSends([.ping(0x0102_0304_0506_0708)])
        #expect(pair.client.state == .established)
        #expect(try pair.clientRecords().last?.frames == [.pong(0x0102_0304_0506_0708)])
    }

    @Test func cleanCloseFromServerFrame() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        try pair.serverSends([.close(code: 0, reason: "bye")])
        #expect(pair.clientSeen.last == .closed(nil))
        #expect(pair.client.state == .closed)
        // A closed client ignores everything.
        pair.deliverToClient([0, 1, 2])
        #expect(pair.clientSeen.last == .closed(nil))
    }
}
