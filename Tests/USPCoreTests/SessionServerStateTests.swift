import Testing
@testable import USPCore
import USPTestSupport

/// Every transition of `ServerSession.State`, legal and illegal, through a real client where
/// possible and crafted bytes where a real client would never send them.
@Suite struct SessionServerStateTests {
    /// An application token for index 1 ("echo"), issued on a separate connection with `policy`.
    static func echoToken(_ policy: TestPolicy, peerAddress: String = "192.0.2.10") throws -> String {
        var pair = SessionPair(.ik, policy: policy, peerAddress: peerAddress, seed: 900)
        try pair.establish()
        return try pair.token(1)
    }

    // MARK: - Handshake

    /// IK and NK finish the handshake with message 1. A client clock ten minutes off makes the
    /// server refuse the early frames, so the initial request comes afterwards in a record.
    @Test(arguments: [HandshakeLayout.Pattern.ik, .nk])
    func oneMessagePatternsGoFromAwaitingMessage1ToAwaitingInitialRequest(pattern: HandshakeLayout.Pattern) throws {
        var pair = SessionPair(pattern)
        #expect(pair.server.state == .awaitingMessage1)
        try pair.client.start(ClientStart(), now: Timestamp(seconds: pair.now.seconds - 600))
        let m1 = pair.client.drainOutbound { Array($0) }
        #expect(m1.count == HandshakeLayout.message1Length)

        // Message 1 in two pieces: nothing happens until all 1024 bytes are in.
        pair.deliverToServer(Array(m1[0..<1000]))
        #expect(pair.server.state == .awaitingMessage1)
        #expect(pair.server.outboundByteCount == 0)
        #expect(pair.serverSeen.isEmpty)
        pair.deliverToServer(Array(m1[1000...]))
        #expect(pair.server.state == .awaitingInitialRequest)
        #expect(pair.serverSeen == [.handshake(pattern, early: false)])
        #expect(pair.server.outboundByteCount == HandshakeLayout.message2Length)
        #expect(pair.server.handshake?.remoteStatic == (pattern == .ik ? SessionPair.clientKey.publicKey : nil))
        #expect(pair.server.menu == nil)

        pair.pump()
        #expect(pair.server.state == .established)
        #expect(pair.client.state == .established)
        #expect(pair.clientSeen.contains(.menu([1, 2])))
        #expect(pair.server.clientSessionID == pair.client.clientSessionID)
    }

    /// With early data accepted the server passes awaitingInitialRequest within message 1 and
    /// the menu goes out with message 2: one round trip.
    @Test(arguments: [HandshakeLayout.Pattern.ik, .nk])
    func earlyInitialRequestEstablishesWithMessage1(pattern: HandshakeLayout.Pattern) throws {
        var pair = SessionPair(pattern)
        try pair.start()
        pair.deliverToServer(pair.client.drainOutbound { Array($0) })
        #expect(pair.server.state == .established)
        #expect(pair.serverSeen == [.handshake(pattern, early: true)])
        #expect(pair.server.outboundByteCount > HandshakeLayout.message2Length)
        pair.deliverToClient(pair.server.drainOutbound { Array($0) })
        #expect(pair.client.state == .established)
        #expect(pair.clientSeen == [.handshake(pattern, early: true), .menu([1, 2])])
        #expect(pair.client.outboundByteCount == 0)
    }

    @Test func xxGoesThroughAwaitingMessage3() throws {
        var pair = SessionPair(.xx)
        try pair.start()
        let m1 = pair.client.drainOutbound { Array($0) }
        #expect(m1.count == HandshakeLayout.message1Length)
        pair.deliverToServer(m1)
        #expect(pair.server.state == .awaitingMessage3)
        #expect(pair.serverSeen.isEmpty)
        #expect(pair.server.handshake == nil)
        let m2 = pair.server.drainOutbound { Array($0) }
        #expect(m2.count == HandshakeLayout.message2Length)

        pair.deliverToClient(m2)
        #expect(pair.client.state == .awaitingReply)
        let flight = pair.client.drainOutbound { Array($0) }
        #expect(flight.count > HandshakeLayout.message3Length)  // message 3 and the initial request

        // Message 3 byte by byte for the first half: the server only acts on the 128th byte.
        for b in flight[0..<64] { pair.deliverToServer([b]) }
        #expect(pair.server.state == .awaitingMessage3)
        pair.deliverToServer(Array(flight[64..<HandshakeLayout.message3Length]))
        #expect(pair.server.state == .awaitingInitialRequest)
        #expect(pair.serverSeen == [.handshake(.xx, early: false)])
        #expect(pair.server.handshake?.remoteStatic == SessionPair.clientKey.publicKey)
        #expect(pair.server.outboundByteCount == 0)

        pair.deliverToServer(Array(flight[HandshakeLayout.message3Length...]))
        #expect(pair.server.state == .established)
        #expect(pair.server.menu?.applications.keys.map(\.rawValue).sorted() == [1, 2])
        pair.pump()
        #expect(pair.client.state == .established)
    }

    /// Message 3 and the initial request in the same read as message 1's answer is consumed.
    @Test func xxMessage3AndRecordsInOneRead() throws {
        var pair = SessionPair(.xx)
        try pair.establish()
        #expect(pair.server.state == .established)
        #expect(pair.flights == 4)
    }

    @Test(arguments: [HandshakeLayout.Pattern.xx, .ik, .nk])
    func applicationSessionBeginEstablishes(pattern: HandshakeLayout.Pattern) throws {
        let policy = TestPolicy()
        let token = try Self.echoToken(policy)
        var pair = SessionPair(pattern, policy: policy, seed: 3)
        try pair.establish(ClientStart(application: .init(token: token), initialData: Array("hi".utf8)))
        #expect(pair.server.state == .established)
        #expect(pair.server.menu == nil)  // a dedicated connection gets no menu
        #expect(pair.serverSeen.contains(.opened(1, "echo")))
        #expect(pair.serverData[1] == Array("hi".utf8))
        #expect(pair.server.streamGrants[1]?.application == "echo")
        #expect(pair.clientSeen.contains(.accepted(1)))
        #expect(pair.clientSeen.contains(.appReply("begin")))
        #expect(pair.client.state == .established)
        #expect(pair.client.applicationStream == 1)
    }

    // MARK: - To closed

    @Test func cleanCloseFromClient() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        pair.client.close { pair.clientSeen.append(Seen($0)) }
        #expect(pair.clientSeen.last == .closed(nil))
        pair.pump()
        #expect(pair.server.state == .closed)
        #expect(pair.serverSeen.last == .closed(nil))
        #expect(pair.server.outboundByteCount == 0)
        // Input after the close is ignored.
        pair.deliverToServer([1, 2, 3])
        #expect(pair.server.state == .closed)
        #expect(pair.serverSeen.filter { if case .closed = $0 { true } else { false } }.count == 1)
    }

    @Test func closeWithACodeFromClient() throws {
        var pair = SessionPair(.xx)
        try pair.establish()
        pair.client.close(code: .shuttingDown) { pair.clientSeen.append(Seen($0)) }
        #expect(pair.clientSeen.last == .closed(.shuttingDown))
        pair.pump()
        #expect(pair.serverSeen.last == .closed(.closedByPeer))
        #expect(pair.server.peerCloseCode == .shuttingDown)
        #expect(pair.server.state == .closed)
        let records = try pair.clientRecords()
        #expect(records.last?.frames.first == .close(code: USPError.Code.shuttingDown.wireValue, reason: "shutting_down"))
    }

    /// CLOSE is legal before the initial request.
    @Test func closeBeforeInitialRequest() throws {
        var pair = SessionPair(.xx)
        try pair.handshakeWithoutInitialRequest()
        var forger = try pair.clientForger()
        pair.deliverToServer(forger.seal([.close(code: 0, reason: "")]))
        #expect(pair.server.state == .closed)
        #expect(pair.serverSeen.last == .closed(nil))
        #expect(pair.server.outboundByteCount == 0)
    }

    /// After the handshake a peer error ends the session with a CLOSE carrying the code.
    @Test func errorAfterHandshakeSendsCloseWithCode() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        try pair.clientSends([.accept(opener: 1, acceptor: 1)])
        #expect(pair.server.state == .closed)
        #expect(pair.serverSeen.last == .closed(.unexpectedMessage))
        #expect(pair.client.state == .closed)
        #expect(pair.clientSeen.last == .closed(.unexpectedMessage))
        let last = try #require(try pair.serverRecords().last)
        #expect(last.frames == [.close(code: USPError.Code.unexpectedMessage.wireValue, reason: "unexpected_message")])
    }

    @Test func endOfInputWhileAwaitingMessage1() throws {
        var pair = SessionPair(.ik)
        try pair.start()
        pair.deliverToServer(Array(pair.client.drainOutbound { Array($0) }.prefix(500)))
        pair.serverEndOfInput()
        #expect(pair.server.state == .closed)
        #expect(pair.serverSeen == [.closed(.unexpectedEOF)])
        #expect(pair.server.outboundByteCount == 0)
    }

    @Test func endOfInputWhileAwaitingMessage3() throws {
        var pair = SessionPair(.xx)
        try pair.start()
        pair.deliverToServer(pair.client.drainOutbound { Array($0) })
        _ = pair.server.drainOutbound { Array($0) }
        pair.serverEndOfInput()
        #expect(pair.serverSeen == [.closed(.unexpectedEOF)])
        #expect(pair.server.outboundByteCount == 0)
    }

    @Test func endOfInputAfterHandshakeWithoutClose() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        pair.serverEndOfInput()
        #expect(pair.server.state == .closed)
        #expect(pair.serverSeen.last == .closed(.unexpectedEOF))
        #expect(pair.server.outboundByteCount == 0)  // the client is gone: nothing to say
    }

    @Test func endOfInputInsideARecordIsTruncation() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        try pair.client.ping(42)
        let record = pair.client.drainOutbound { Array($0) }
        pair.deliverToServer(Array(record.dropLast(3)))
        #expect(pair.server.state == .established)
        pair.serverEndOfInput()
        #expect(pair.serverSeen.last == .closed(.recordTruncated))
        pair.pump()
        #expect(pair.clientSeen.last == .closed(.recordTruncated))
    }

    @Test func handshakeDeadlineBeforeMessage1SendsNothing() throws {
        var pair = SessionPair(.ik)
        try pair.start()
        pair.deliverToServer(Array(pair.client.drainOutbound { Array($0) }.prefix(100)))
        var seen: [Seen] = []
        pair.server.handshakeDeadlinePassed { seen.append(Seen($0)) }
        #expect(seen == [.closed(.handshakeTimeout)])
        #expect(pair.server.state == .closed)
        #expect(pair.server.outboundByteCount == 0)
    }

    @Test func handshakeDeadlineBeforeMessage3SendsNothing() throws {
        var pair = SessionPair(.xx)
        try pair.start()
        pair.deliverToServer(pair.client.drainOutbound { Array($0) })
        pair.deliverToClient(pair.server.drainOutbound { Array($0) })
        pair.deliverToServer(Array(pair.client.drainOutbound { Array($0) }.prefix(127)))
        var seen: [Seen] = []
        pair.server.handshakeDeadlinePassed { seen.append(Seen($0)) }
        #expect(seen == [.closed(.handshakeTimeout)])
        #expect(pair.server.outboundByteCount == 0)
        // The last byte of message 3 arrives too late.
        pair.deliverToServer([0])
        #expect(pair.server.state == .closed)
        #expect(pair.server.outboundByteCount == 0)
    }

    @Test func handshakeDeadlineAfterHandshakeIsIgnored() throws {
        var pair = SessionPair(.xx)
        try pair.handshakeWithoutInitialRequest()
        var seen: [Seen] = []
        pair.server.handshakeDeadlinePassed { seen.append(Seen($0)) }
        #expect(seen.isEmpty)
        #expect(pair.server.state == .awaitingInitialRequest)
        #expect(pair.server.outboundByteCount == 0)
    }

    @Test func serverCloseWithCode() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        var seen: [Seen] = []
        pair.server.close(code: .shuttingDown) { seen.append(Seen($0)) }
        #expect(seen == [.closed(.shuttingDown)])
        #expect(pair.server.state == .closed)
        pair.pump()
        #expect(pair.clientSeen.last == .closed(.shuttingDown))
        #expect(pair.client.state == .closed)
    }

    @Test func serverCleanClose() throws {
        var pair = SessionPair(.nk)
        try pair.establish()
        var seen: [Seen] = []
        pair.server.close { seen.append(Seen($0)) }
        #expect(seen == [.closed(nil)])
        pair.pump()
        #expect(pair.clientSeen.last == .closed(nil))
        // Closing twice does nothing.
        pair.server.close(code: .internalError) { seen.append(Seen($0)) }
        #expect(seen == [.closed(nil)])
        #expect(pair.server.outboundByteCount == 0)
    }

    @Test func serverCloseBeforeHandshakeSendsNothing() throws {
        var pair = SessionPair(.xx)
        try pair.start()
        pair.deliverToServer(pair.client.drainOutbound { Array($0) })
        _ = pair.server.drainOutbound { Array($0) }
        var seen: [Seen] = []
        pair.server.close(code: .shuttingDown) { seen.append(Seen($0)) }
        #expect(seen == [.closed(.shuttingDown)])
        #expect(pair.server.outboundByteCount == 0)
    }

    // MARK: - Darkness before the handshake

    @Test func randomMessage1InStealthSendsNothing() throws {
        var server = ServerSession(staticKey: SessionPair.serverKey, peerAddress: "192.0.2.1", allowFirstContact: false,
                                   random: SeededRandom(seed: 5))
        let garbage = SeededRandom(seed: 6).bytes(1024)
        var seen: [Seen] = []
        server.receive(garbage, now: Timestamp(seconds: 1_800_000_000), delegate: TestPolicy()) { seen.append(Seen($0)) }
        #expect(seen == [.closed(.patternNotAllowed)])
        #expect(server.state == .closed)
        #expect(server.outboundByteCount == 0)
    }

    /// A first-contact client at a stealth server: it never hears a byte.
    @Test func xxClientAtStealthServerHearsNothing() throws {
        var pair = SessionPair(.xx, allowFirstContact: false)
        try pair.start()
        pair.pump()
        #expect(pair.serverSeen == [.closed(.patternNotAllowed)])
        #expect(pair.toClientWire.isEmpty)
        pair.clientEndOfInput()
        #expect(pair.clientSeen == [.closed(.unexpectedEOF)])
    }

    /// IK to a server whose key is not the one the client expected.
    @Test func ikWithTheWrongServerKeyAtStealthServerHearsNothing() throws {
        let other = try KeyPair(privateKey: [UInt8](repeating: 8, count: 32))
        var pair = SessionPair(mode: .knownServer(serverKey: other.publicKey, clientStatic: SessionPair.clientKey), allowFirstContact: false)
        try pair.start()
        pair.pump()
        #expect(pair.serverSeen == [.closed(.patternNotAllowed)])
        #expect(pair.toClientWire.isEmpty)
    }

    /// `e` travels Elligator-encoded (docs/PROTOCOL.md §3.2.2): what an attacker sends is the
    /// representative of a low-order point.
    @Test(arguments: hsLowOrderRepresentatives)
    func lowOrderEphemeralSendsNothing(point: [UInt8]) throws {
        for allowFirstContact in [true, false] {
            var server = ServerSession(staticKey: SessionPair.serverKey, peerAddress: "192.0.2.1", allowFirstContact: allowFirstContact,
                                       random: SeededRandom(seed: 5))
            var seen: [Seen] = []
            server.receive(point + SeededRandom(seed: 6).bytes(992), now: Timestamp(seconds: 1_800_000_000), delegate: TestPolicy()) {
                seen.append(Seen($0))
            }
            #expect(seen == [.closed(.lowOrderPoint)])
            #expect(server.outboundByteCount == 0)
        }
    }

    @Test func garbageMessage3SendsNothing() throws {
        var pair = SessionPair(.xx)
        try pair.start()
        pair.deliverToServer(pair.client.drainOutbound { Array($0) })
        _ = pair.server.drainOutbound { Array($0) }
        pair.deliverToServer(SeededRandom(seed: 11).bytes(200))
        #expect(pair.serverSeen == [.closed(.handshakeDecryptFailed)])
        #expect(pair.server.outboundByteCount == 0)
    }

    /// A real message 3 with one bit flipped.
    @Test func tamperedMessage3SendsNothing() throws {
        var pair = SessionPair(.xx)
        try pair.start()
        pair.deliverToServer(pair.client.drainOutbound { Array($0) })
        pair.deliverToClient(pair.server.drainOutbound { Array($0) })
        var flight = pair.client.drainOutbound { Array($0) }
        flight[100] ^= 1
        pair.deliverToServer(flight)
        #expect(pair.serverSeen == [.closed(.handshakeDecryptFailed)])
        #expect(pair.server.outboundByteCount == 0)
    }

    /// Garbage in place of message 1 at a server that allows first contact looks like XX (its
    /// message 1 is a bare key and filler); the server answers message 2 and then times out.
    @Test func garbageMessage1AtOpenServerTimesOutSilently() throws {
        var server = ServerSession(staticKey: SessionPair.serverKey, peerAddress: "192.0.2.1", random: SeededRandom(seed: 5))
        var seen: [Seen] = []
        server.receive(SeededRandom(seed: 7).bytes(1024), now: Timestamp(seconds: 1_800_000_000), delegate: TestPolicy()) {
            seen.append(Seen($0))
        }
        #expect(server.state == .awaitingMessage3)
        #expect(server.drainOutbound { $0.count } == HandshakeLayout.message2Length)
        server.handshakeDeadlinePassed { seen.append(Seen($0)) }
        #expect(seen == [.closed(.handshakeTimeout)])
        #expect(server.outboundByteCount == 0)
    }

    // MARK: - Illegal before the initial request

    /// Frames a client may not send before its initial request, each in a record of its own.
    static let illegalBeforeInitialRequest: [Frame] = [
        .open(stream: 1, session: []),
        .data(stream: 1, data: [1, 2, 3]),
        .window(stream: 1, increment: 100),
        .fin(stream: 1),
        .reset(stream: 1, code: 0),
        .accept(opener: 1, acceptor: 1),
        .reject(opener: 1, code: 0, message: "no"),
    ]

    @Test(arguments: illegalBeforeInitialRequest)
    func streamFramesBeforeInitialRequest(frame: Frame) throws {
        var pair = SessionPair(.xx)
        try pair.handshakeWithoutInitialRequest()
        #expect(pair.server.state == .awaitingInitialRequest)
        var forger = try pair.clientForger()
        pair.deliverToServer(forger.seal([frame]))
        #expect(pair.server.state == .closed)
        #expect(pair.serverSeen.last == .closed(.unexpectedMessage))
        pair.pump()
        #expect(pair.clientSeen.last == .closed(.unexpectedMessage))
    }

    @Test func serviceRequestBeforeInitialRequest() throws {
        var pair = SessionPair(.xx)
        try pair.handshakeWithoutInitialRequest()
        var forger = try pair.clientForger()
        let request = SessionMessage.serviceRequest(ServiceRequest(clientSessionID: pair.client.clientSessionID, services: [1: [:]]))
        pair.deliverToServer(forger.seal([try messageFrame(request)]))
        #expect(pair.serverSeen.last == .closed(.unexpectedMessage))
        pair.pump()
        #expect(pair.clientSeen.last == .closed(.unexpectedMessage))
        #expect(!pair.clientSeen.contains { if case .reply = $0 { true } else { false } })
    }

    /// PING is legal before the initial request; the session then goes on as usual.
    @Test func pingBeforeInitialRequestIsAnswered() throws {
        var pair = SessionPair(.xx)
        try pair.handshakeWithoutInitialRequest()
        var forger = try pair.clientForger()
        let request = SessionMessage.initialRequest(InitialRequest(clientSessionID: pair.client.clientSessionID))
        pair.deliverToServer(forger.seal([.ping(7), .padding(length: 10)]))
        #expect(pair.server.state == .awaitingInitialRequest)
        pair.deliverToServer(forger.seal([try messageFrame(request)]))
        #expect(pair.server.state == .established)
        var tap = RecordTap(receiving: try #require(pair.client.handshake).transport.receive)
        let records = try tap.feed(pair.server.drainOutbound { Array($0) })
        #expect(records.first?.frames == [.pong(7)])
        #expect(records.count == 2)
        if case .message(let kind, _)? = records.last?.frames.first { #expect(kind == SessionMessage.Kind.menu.rawValue) } else {
            Issue.record("no menu")
        }
    }

    /// Server messages sent by a client, before and after the initial request.
    static let serverOnlyMessages: [SessionMessage] = [
        .menu(ApplicationMenu(serverSessionID: "s-x", applications: [1: ApplicationOffer(name: "x", expectedRequestBody: [:])])),
        .serviceReply(ServiceReply(results: [1: .token("usp1.abc")])),
        .applicationSessionReply(ApplicationSessionReply(serverSessionID: "s-x", outcome: .session(ApplicationSessionResult(action: .end)))),
        .error(SessionErrorMessage(.internalError)),
    ]

    @Test(arguments: serverOnlyMessages)
    func serverMessagesFromClientBeforeInitialRequest(message: SessionMessage) throws {
        var pair = SessionPair(.xx)
        try pair.handshakeWithoutInitialRequest()
        var forger = try pair.clientForger()
        pair.deliverToServer(forger.seal([try messageFrame(message)]))
        #expect(pair.serverSeen.last == .closed(.unexpectedMessage))
        pair.pump()
        #expect(pair.clientSeen.last == .closed(.unexpectedMessage))
    }

    @Test(arguments: serverOnlyMessages)
    func serverMessagesFromClientWhenEstablished(message: SessionMessage) throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        try pair.clientSends([try messageFrame(message)])
        #expect(pair.serverSeen.last == .closed(.unexpectedMessage))
        #expect(pair.clientSeen.last == .closed(.unexpectedMessage))
    }

    @Test func malformedInitialRequest() throws {
        var pair = SessionPair(.xx)
        try pair.handshakeWithoutInitialRequest()
        var forger = try pair.clientForger()
        pair.deliverToServer(forger.seal([.message(kind: 1, json: Array("{\"v\":1}".utf8))]))
        #expect(pair.serverSeen.last == .closed(.malformedMessage))
        pair.pump()
        #expect(pair.clientSeen.last == .closed(.malformedMessage))
    }

    // MARK: - Illegal when established

    @Test func secondPlainInitialRequest() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let again = SessionMessage.initialRequest(InitialRequest(clientSessionID: pair.client.clientSessionID))
        try pair.clientSends([try messageFrame(again)])
        #expect(pair.serverSeen.last == .closed(.unexpectedMessage))
        #expect(pair.clientSeen.last == .closed(.unexpectedMessage))
    }

    /// A later initial_request may not begin a second dedicated stream (OPEN does that).
    @Test func secondInitialRequestWithBeginAndStream() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let token = try pair.token(1)
        let presented = try TokenProof.present(secret: token, handshakeHash: pair.client.handshake!.handshakeHash)
        let again = SessionMessage.initialRequest(InitialRequest(
            clientSessionID: pair.client.clientSessionID,
            applicationSession: ApplicationSessionRequest(token: presented, action: .begin, clientTCPStream: 1)))
        try pair.clientSends([try messageFrame(again)])
        #expect(pair.serverSeen.last == .closed(.unexpectedMessage))
        #expect(!pair.serverSeen.contains { if case .opened = $0 { true } else { false } })
    }

    /// `begin` without a client stream: on an established session only that request is refused
    /// (streams open with OPEN there); as the first request it is a protocol error with a code.
    @Test func beginWithoutAClientStream() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let token = try pair.token(1)
        try pair.client.applicationAction(token: token, action: .begin)
        pair.pump()
        #expect(pair.clientSeen.last == .appReply("unexpected_message"))
        #expect(pair.server.state == .established)
        #expect(!pair.serverSeen.contains { if case .opened = $0 { true } else { false } })

        var first = SessionPair(.xx, policy: pair.policy, seed: 2)
        try first.handshakeWithoutInitialRequest()
        var forger = try first.clientForger()
        let presented = try TokenProof.present(secret: token, handshakeHash: first.client.handshake!.handshakeHash)
        let request = SessionMessage.initialRequest(InitialRequest(
            clientSessionID: first.client.clientSessionID, applicationSession: ApplicationSessionRequest(token: presented, action: .begin)))
        first.deliverToServer(forger.seal([try messageFrame(request)]))
        #expect(first.serverSeen.last == .closed(.malformedMessage))
        first.pump()
        #expect(first.clientSeen.last == .closed(.malformedMessage))
    }

    @Test func laterApplicationActionWithAnotherSessionID() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let token = try pair.token(1)
        let presented = try TokenProof.present(secret: token, handshakeHash: pair.client.handshake!.handshakeHash)
        let again = SessionMessage.initialRequest(InitialRequest(
            clientSessionID: "c-someone-else", applicationSession: ApplicationSessionRequest(token: presented, action: "status")))
        try pair.clientSends([try messageFrame(again)])
        #expect(pair.serverSeen.last == .closed(.sessionIDMismatch))
        #expect(pair.clientSeen.last == .closed(.sessionIDMismatch))
        #expect(pair.policy.actions.isEmpty)
    }

    @Test func serviceRequestWithAnotherSessionID() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let request = SessionMessage.serviceRequest(ServiceRequest(clientSessionID: "c-someone-else", services: [1: [:]]))
        try pair.clientSends([try messageFrame(request)])
        #expect(pair.serverSeen.last == .closed(.sessionIDMismatch))
        #expect(pair.clientSeen.last == .closed(.sessionIDMismatch))
        #expect(pair.serviceReplies.isEmpty)
    }

    @Test(arguments: [Frame.accept(opener: 1, acceptor: 1), .reject(opener: 1, code: 304, message: "stream_limit")])
    func acceptOrRejectFromClient(frame: Frame) throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let token = try pair.token(1)
        _ = try pair.client.openStream(applicationToken: token)
        pair.pump()
        try pair.clientSends([frame])
        #expect(pair.serverSeen.last == .closed(.unexpectedMessage))
        #expect(pair.clientSeen.last == .closed(.unexpectedMessage))
    }

    /// Stream frames that break the stream rules, each with its own code.
    static let streamViolations: [(frames: [Frame], code: USPError.Code)] = [
        ([.data(stream: 9, data: [1])], .unknownStream),
        ([.window(stream: 9, increment: 1)], .unknownStream),
        ([.fin(stream: 9)], .unknownStream),
        ([.reset(stream: 9, code: 0)], .unknownStream),
        ([.fin(stream: 1), .fin(stream: 1)], .streamClosed),
        ([.fin(stream: 1), .data(stream: 1, data: [1])], .streamClosed),
        ([.window(stream: 1, increment: UInt32(StreamLimits.maxWindow))], .windowOverflow),
        ([.message(kind: 9, json: Array("{}".utf8))], .malformedMessage),
        ([.message(kind: 3, json: Array("not json".utf8))], .malformedMessage),
        ([.open(stream: 2, session: Array("{}".utf8))], .malformedMessage),
    ]

    @Test(arguments: 0..<streamViolations.count)
    func streamRuleViolationsWhenEstablished(index: Int) throws {
        let (frames, code) = Self.streamViolations[index]
        var pair = SessionPair(.ik)
        try pair.establish()
        let token = try pair.token(1)
        #expect(try pair.client.openStream(applicationToken: token) == 1)
        pair.pump()
        #expect(pair.serverSeen.contains(.opened(1, "echo")))
        try pair.clientSends(frames)
        #expect(pair.serverSeen.last == .closed(code))
        #expect(pair.clientSeen.last == .closed(code))
    }

    @Test func openWithANonIncreasingID() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let token = try pair.token(1)
        _ = try pair.client.openStream(applicationToken: token)
        _ = try pair.client.openStream(applicationToken: token)
        pair.pump()
        #expect(pair.clientSeen.filter { if case .accepted = $0 { true } else { false } }.count == 2)
        let body = try ApplicationSessionRequest(
            token: TokenProof.present(secret: token, handshakeHash: pair.client.handshake!.handshakeHash), action: .begin).encodeOpenBody()
        try pair.clientSends([.open(stream: 2, session: body)])
        #expect(pair.serverSeen.last == .closed(.streamIDNotIncreasing))
        #expect(pair.clientSeen.last == .closed(.streamIDNotIncreasing))
    }

    @Test func unknownFrameTypeFromClient() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        try pair.client._sendRawRecord([0x0E, 0, 0])
        pair.pump()
        #expect(pair.serverSeen.last == .closed(.unknownFrameType))
        #expect(pair.clientSeen.last == .closed(.unknownFrameType))
    }
}
