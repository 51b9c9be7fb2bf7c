import Testing
@testable import USPCore
import USPTestSupport

/// Early frames in IK/NK message 1 (docs/PROTOCOL.md §3.6): acted on once, within the time
/// window, and sent again after the handshake when refused.
@Suite struct SessionEarlyDataTests {
    @Test(arguments: [HandshakeLayout.Pattern.ik, .nk])
    func applicationBeginWithDataBeforeMessage2IsSent(pattern: HandshakeLayout.Pattern) throws {
        let policy = TestPolicy()
        let token = try SessionServerStateTests.echoToken(policy)
        var pair = SessionPair(pattern, policy: policy, seed: 10)
        try pair.start(ClientStart(application: .init(token: token), initialData: Array("GET /".utf8)))
        let m1 = pair.client.drainOutbound { Array($0) }
        #expect(m1.count == HandshakeLayout.message1Length)
        pair.deliverToServer(m1)
        // Everything happened while message 2 is still in the server's outbound buffer.
        #expect(pair.serverSeen == [.handshake(pattern, early: true), .opened(1, "echo"), .data(1, Array("GET /".utf8))])
        #expect(pair.server.earlyDataAccepted)
        #expect(pair.toClientWire.isEmpty)
        #expect(pair.server.outboundByteCount > HandshakeLayout.message2Length)

        // The application answers at once; message 2, the reply and the data go in one flight.
        #expect(try Array("200".utf8).withUnsafeBytes { try pair.server.write(stream: 1, $0) } == 3)
        pair.deliverToClient(pair.server.drainOutbound { Array($0) })
        #expect(pair.clientSeen == [.handshake(pattern, early: true), .accepted(1), .appReply("begin"), .data(1, Array("200".utf8))])
        #expect(pair.client.outboundByteCount == 0)  // nothing sent again

        // The stream goes on; the early bytes counted against the window on both sides.
        try pair.clientWrite(1, Array(" HTTP/1.1".utf8))
        #expect(pair.serverData[1] == Array("GET / HTTP/1.1".utf8))
    }

    @Test func replayedMessage1OpensNothing() throws {
        let policy = TestPolicy()
        let token = try SessionServerStateTests.echoToken(policy)
        var pair = SessionPair(.ik, policy: policy, seed: 11)
        try pair.start(ClientStart(application: .init(token: token), initialData: Array("rm -rf".utf8)))
        let m1 = pair.client.drainOutbound { Array($0) }
        pair.deliverToServer(m1)
        #expect(pair.serverSeen.contains(.opened(1, "echo")))

        // The same message 1 on a new connection to the same server (same policy, same replay guard).
        var replay = ServerSession(staticKey: SessionPair.serverKey, peerAddress: "192.0.2.10", random: SeededRandom(seed: 500))
        var seen: [Seen] = []
        replay.receive(m1, now: pair.now, delegate: policy) { seen.append(Seen($0)) }
        #expect(seen == [.handshake(.ik, early: false)])
        #expect(replay.state == .awaitingInitialRequest)
        #expect(!replay.earlyDataAccepted)
        #expect(replay.openStreamCount == 0)
        // Only message 2 goes out; the replayer cannot read it nor send a record.
        #expect(replay.outboundByteCount == HandshakeLayout.message2Length)

        // Replayed again later, after the guard forgot the key: the timestamp is stale now.
        var late = ServerSession(staticKey: SessionPair.serverKey, peerAddress: "192.0.2.10", random: SeededRandom(seed: 501))
        var lateSeen: [Seen] = []
        late.receive(m1, now: Timestamp(seconds: pair.now.seconds + 1000), delegate: policy) { lateSeen.append(Seen($0)) }
        #expect(lateSeen == [.handshake(.ik, early: false)])
    }

    /// A client clock 10 minutes behind: the server refuses the early frames, the client sends
    /// them again after the handshake, and the stream works one round trip later.
    @Test func staleTimestampIsResentAfterTheHandshake() throws {
        let policy = TestPolicy()
        let token = try SessionServerStateTests.echoToken(policy)
        var fast = SessionPair(.ik, policy: policy, seed: 12)
        try fast.establish(ClientStart(application: .init(token: token), initialData: Array("hello".utf8)))
        #expect(fast.flights == 2)

        var slow = SessionPair(.ik, policy: policy, seed: 13)
        try slow.client.start(ClientStart(application: .init(token: token), initialData: Array("hello".utf8)),
                              now: Timestamp(seconds: slow.now.seconds - 600))
        slow.deliverToServer(slow.client.drainOutbound { Array($0) })
        #expect(slow.serverSeen == [.handshake(.ik, early: false)])
        #expect(slow.server.state == .awaitingInitialRequest)
        slow.pump()
        #expect(slow.clientSeen.first == .handshake(.ik, early: false))
        #expect(slow.serverSeen.suffix(2) == [.opened(1, "echo"), .data(1, Array("hello".utf8))])
        #expect(slow.clientSeen.contains(.accepted(1)))
        #expect(slow.flights + 1 == 4)  // message 1 went by hand: one round trip more than `fast`
        // The resent request is in the first record, the data with it.
        let first = try #require(try slow.clientRecords().first)
        guard case .message(let kind, _)? = first.frames.first else { Issue.record("no message first"); return }
        #expect(kind == SessionMessage.Kind.initialRequest.rawValue)
        #expect(first.frames.dropFirst().first == .data(stream: 1, data: Array("hello".utf8)))
        #expect(try slow.serverWrite(1, [1]) == 1)
        #expect(slow.clientData[1] == [1])
    }

    /// Initial data too big for message 1: nothing rides early, the request and the data follow
    /// the handshake.
    @Test func initialDataTooBigForMessage1() throws {
        let policy = TestPolicy()
        let token = try SessionServerStateTests.echoToken(policy)
        var pair = SessionPair(.ik, policy: policy, seed: 14)
        let data = SessionStreamTests.pattern(HandshakeLayout.earlyFrameCapacity(.ik) + 1)
        try pair.establish(ClientStart(application: .init(token: token), initialData: data))
        #expect(pair.serverSeen.first == .handshake(.ik, early: false))
        #expect(!pair.server.earlyDataAccepted)
        #expect(pair.serverData[1] == data)
        #expect(pair.clientSeen.contains(.accepted(1)))
        #expect(pair.flights == 4)
    }

    @Test func futureTimestampIsRefusedToo() throws {
        var pair = SessionPair(.nk)
        try pair.client.start(ClientStart(), now: Timestamp(seconds: pair.now.seconds + 600))
        pair.pump()
        #expect(pair.serverSeen.first == .handshake(.nk, early: false))
        #expect(pair.client.state == .established)
        #expect(pair.flights == 4)
    }

    /// Early frames that break the rules end the session like any record would, with a CLOSE
    /// after message 2.
    @Test func illegalEarlyFrames() throws {
        for (frames, code) in [
            ([Frame.data(stream: 1, data: [1])], USPError.Code.unexpectedMessage),
            ([.rekey], .unexpectedMessage),
            ([.message(kind: 1, json: Array("{}".utf8))], .malformedMessage),
        ] {
            var initiator = try InitiatorHandshake(mode: SessionPair.mode(.ik), random: SeededRandom(seed: 3))
            var hello = Hello()
            hello.timestamp = Timestamp(seconds: 1_800_000_000)
            let m1 = try initiator.writeMessage1(hello: hello, earlyFrames: frames.flatMap(\.encoded))
            var server = ServerSession(staticKey: SessionPair.serverKey, peerAddress: "192.0.2.1", random: SeededRandom(seed: 4))
            var seen: [Seen] = []
            server.receive(m1, now: Timestamp(seconds: 1_800_000_000), delegate: TestPolicy()) { seen.append(Seen($0)) }
            #expect(seen == [.handshake(.ik, early: true), .closed(code)])
            let out = server.drainOutbound { Array($0) }
            guard case .finished(let result) = try initiator.readMessage2(Array(out[0..<HandshakeLayout.message2Length])) else {
                Issue.record("IK message 2 finishes the handshake")
                continue
            }
            var tap = RecordTap(receiving: result.transport.receive)
            #expect(try tap.feed(Array(out[HandshakeLayout.message2Length...])).flatMap(\.frames)
                == [.close(code: code.wireValue, reason: code.name)])
        }
    }

    /// An initial request with the early binding is the only thing that works early: a token
    /// presented for the final handshake hash is not yet known to the client, and one for some
    /// other hash fails.
    @Test func earlyTokenMustBeBoundToTheEarlyHash() throws {
        let policy = TestPolicy()
        let token = try SessionServerStateTests.echoToken(policy)
        var initiator = try InitiatorHandshake(mode: SessionPair.mode(.ik), random: SeededRandom(seed: 30))
        var hello = Hello()
        hello.timestamp = Timestamp(seconds: 1_800_000_000)
        let wrong = try TokenProof.present(secret: token, handshakeHash: [UInt8](repeating: 1, count: 32))
        let request = SessionMessage.initialRequest(InitialRequest(
            clientSessionID: "c-early", applicationSession: ApplicationSessionRequest(token: wrong, action: .begin, clientTCPStream: 1)))
        let m1 = try initiator.writeMessage1(hello: hello, earlyFrames: try messageFrame(request).encoded)
        var server = ServerSession(staticKey: SessionPair.serverKey, peerAddress: "192.0.2.10", random: SeededRandom(seed: 31))
        var seen: [Seen] = []
        server.receive(m1, now: Timestamp(seconds: 1_800_000_000), delegate: policy) { seen.append(Seen($0)) }
        #expect(seen == [.handshake(.ik, early: true), .closed(.tokenInvalid)])
    }

    /// Policy learns that a request came in early frames (replayable, bound to the early hash)
    /// also for a service_request after the initial request in message 1.
    @Test func serviceRequestInEarlyFramesIsMarkedEarly() throws {
        let policy = TestPolicy()
        var initiator = try InitiatorHandshake(mode: SessionPair.mode(.ik), random: SeededRandom(seed: 60))
        var hello = Hello()
        hello.timestamp = Timestamp(seconds: 1_800_000_000)
        var earlyBinding: [UInt8] = []
        let m1 = try initiator.writeMessage1(hello: hello) { binding in
            earlyBinding = binding
            let frames = [
                try! messageFrame(.initialRequest(InitialRequest(clientSessionID: "c-early"))),
                try! messageFrame(.serviceRequest(ServiceRequest(clientSessionID: "c-early", services: [1: [:]]))),
            ]
            return frames.flatMap(\.encoded)
        }
        var server = ServerSession(staticKey: SessionPair.serverKey, peerAddress: "192.0.2.10", random: SeededRandom(seed: 61))
        var seen: [Seen] = []
        server.receive(m1, now: Timestamp(seconds: 1_800_000_000), delegate: policy) { seen.append(Seen($0)) }
        #expect(seen == [.handshake(.ik, early: true)])
        #expect(server.state == .established)
        let context = try #require(policy.issueContexts.last)
        #expect(context.isEarlyData)
        #expect(context.channelBinding == earlyBinding)
        #expect(context.channelBinding != server.handshake?.handshakeHash)

        // The same request in a record afterwards is not early, and bound to the final hash.
        var pair = SessionPair(.ik, policy: policy, seed: 62)
        try pair.establish()
        _ = try pair.token(1)
        let later = try #require(policy.issueContexts.last)
        #expect(!later.isEarlyData)
        #expect(later.channelBinding == pair.server.handshake?.handshakeHash)
    }
}
