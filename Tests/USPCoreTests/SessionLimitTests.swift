import Testing
@testable import USPCore
import USPTestSupport

/// Every limit a session enforces or respects: streams, record size, control frames, rekeying,
/// padding and message size.
@Suite struct SessionLimitTests {
    // MARK: - Streams

    @Test func maxStreamsRejectsAndTheSessionGoesOn() throws {
        var server = SessionConfiguration()
        server.maxStreams = 2
        var pair = SessionPair(.ik, server: server)
        try pair.establish()
        let token = try pair.token(1)
        for _ in 0..<3 { _ = try pair.client.openStream(applicationToken: token) }
        // Data right after the third OPEN: the server drops it with the refused stream.
        _ = try ([3, 3, 3] as [UInt8]).withUnsafeBytes { try pair.client.write(stream: 3, $0) }
        pair.pump()
        #expect(pair.clientSeen.contains(.accepted(1)))
        #expect(pair.clientSeen.contains(.accepted(2)))
        #expect(pair.clientSeen.contains(.rejected(3, .streamLimit)))
        #expect(pair.server.openStreamCount == 2)
        #expect(pair.serverData.isEmpty)
        #expect(pair.server.state == .established)

        // Still at the limit: refused again.
        _ = try pair.client.openStream(applicationToken: token)
        pair.pump()
        #expect(pair.clientSeen.last == .rejected(4, .streamLimit))

        // Close one: room for one more.
        try pair.client.reset(stream: 1, code: .ok) { _ in }
        pair.pump()
        #expect(pair.server.openStreamCount == 1)
        let five = try pair.client.openStream(applicationToken: token)
        try pair.clientWrite(five, [5])
        #expect(pair.clientSeen.contains(.accepted(five)))
        #expect(pair.serverData.values.first == [5])
        #expect(pair.server.openStreamCount == 2)
    }

    @Test func clientsOwnStreamLimit() throws {
        var client = SessionConfiguration()
        client.maxStreams = 1
        var pair = SessionPair(.ik, client: client, server: SessionConfiguration())
        try pair.establish()
        let token = try pair.token(1)
        _ = try pair.client.openStream(applicationToken: token)
        #expect(throws: USPError(.streamLimit)) { _ = try pair.client.openStream(applicationToken: token) }
        #expect(pair.client.state == .established)
    }

    /// Refused OPENs cost the server work without progress: beyond maxControlFrames it is a flood.
    @Test func refusedOpensFlood() throws {
        var server = SessionConfiguration()
        server.maxStreams = 1
        server.maxControlFrames = 5
        var pair = SessionPair(.ik, server: server)
        try pair.establish()
        let token = try pair.token(1)
        _ = try pair.client.openStream(applicationToken: token)
        pair.pump()
        for _ in 0..<5 { _ = try pair.client.openStream(applicationToken: token) }
        pair.pump()
        #expect(pair.server.state == .established)
        #expect(pair.clientSeen.filter { if case .rejected(_, .streamLimit) = $0 { true } else { false } }.count == 5)
        _ = try pair.client.openStream(applicationToken: token)
        pair.pump()
        #expect(pair.serverSeen.last == .closed(.controlFlood))
        #expect(pair.clientSeen.last == .closed(.controlFlood))
    }

    /// OPENs the policy rejects count too.
    @Test func rejectedOpensFlood() throws {
        var server = SessionConfiguration()
        server.maxControlFrames = 3
        var pair = SessionPair(.ik, server: server)
        try pair.establish()
        let stranger = TokenProof.issue(random: SeededRandom(seed: 1)).secret
        for _ in 0..<3 { _ = try pair.client.openStream(applicationToken: stranger) }
        pair.pump()
        #expect(pair.server.state == .established)
        _ = try pair.client.openStream(applicationToken: stranger)
        pair.pump()
        #expect(pair.serverSeen.last == .closed(.controlFlood))
    }

    /// Initial data goes out before the server's window is known to the client (and, when early
    /// data is refused, right after it): it is capped at the smallest window a server may
    /// announce. Exactly that much arrives intact even at a server with the smallest window;
    /// one byte more is refused at `start` (it used to trap on the client once the server's
    /// hello showed a smaller window).
    @Test(arguments: [HandshakeLayout.Pattern.xx, .ik])
    func initialDataUpToTheSmallestWindow(pattern: HandshakeLayout.Pattern) throws {
        let policy = TestPolicy()
        let token = try SessionServerStateTests.echoToken(policy)
        var server = SessionConfiguration()
        server.streamWindow = UInt32(StreamLimits.minInitialWindow)
        let data = SessionStreamTests.pattern(StreamLimits.minInitialWindow, seed: 9)

        var tooMuch = SessionPair(pattern, policy: policy, client: SessionConfiguration(), server: server, seed: 50)
        #expect(throws: USPError(.flowControl)) {
            try tooMuch.start(ClientStart(application: .init(token: token), initialData: data + [0]))
        }
        #expect(tooMuch.client.state == .idle)
        #expect(tooMuch.client.outboundByteCount == 0)

        var pair = SessionPair(pattern, policy: policy, client: SessionConfiguration(), server: server, seed: 51)
        try pair.establish(ClientStart(application: .init(token: token), initialData: data))
        #expect(pair.serverData[1] == data)
        #expect(pair.clientSeen.contains(.accepted(1)))
        // The window is used up until the server reads.
        #expect(try pair.clientWrite(1, [1]) == 0)
        try pair.server.consumed(stream: 1, count: data.count)
        pair.pump()
        #expect(try pair.clientWrite(1, [1]) == 1)
    }

    // MARK: - Control frames

    @Test func pingFlood() throws {
        var server = SessionConfiguration()
        server.maxControlFrames = 10
        var pair = SessionPair(.ik, server: server)
        try pair.establish()
        for i in 0..<10 { try pair.client.ping(UInt64(i)) }
        pair.pump()
        #expect(pair.server.state == .established)
        let pongs = try pair.serverRecords().flatMap(\.frames).filter { if case .pong = $0 { true } else { false } }
        #expect(pongs == (0..<10).map { Frame.pong(UInt64($0)) })

        // A MESSAGE is progress: the count starts again.
        _ = try pair.token(1)
        for i in 0..<10 { try pair.client.ping(UInt64(i)) }
        pair.pump()
        #expect(pair.server.state == .established)
        try pair.client.ping(99)
        pair.pump()
        #expect(pair.serverSeen.last == .closed(.controlFlood))
        #expect(pair.clientSeen.last == .closed(.controlFlood))
    }

    /// DATA is progress too.
    @Test func dataResetsTheControlFrameCount() throws {
        var server = SessionConfiguration()
        server.maxControlFrames = 4
        var (pair, _) = try SessionStreamTests.withStreams(1, server: server)
        for round in 0..<5 {
            for i in 0..<4 { try pair.client.ping(UInt64(round * 10 + i)) }
            try pair.clientWrite(1, [UInt8(round)])
        }
        #expect(pair.server.state == .established)
        #expect(pair.serverData[1] == [0, 1, 2, 3, 4])
    }

    @Test func resetFlood() throws {
        var server = SessionConfiguration()
        server.maxControlFrames = 3
        var (pair, _) = try SessionStreamTests.withStreams(1, server: server)
        // RESETs of the same (gone) stream still count.
        try pair.clientSends([.reset(stream: 1, code: 0), .reset(stream: 1, code: 0), .reset(stream: 1, code: 0)])
        #expect(pair.server.state == .established)
        try pair.clientSends([.reset(stream: 1, code: 0)])
        #expect(pair.serverSeen.last == .closed(.controlFlood))
    }

    @Test func pingFloodAgainstTheClient() throws {
        var client = SessionConfiguration()
        client.maxControlFrames = 2
        var pair = SessionPair(.ik, client: client, server: SessionConfiguration())
        try pair.establish()
        try pair.serverSends([.ping(1), .ping(2), .ping(3)])
        #expect(pair.clientSeen.last == .closed(.controlFlood))
        #expect(pair.serverSeen.last == .closed(.closedByPeer))
    }

    // MARK: - Record size

    /// The client announces 1024-byte records: everything the server sends respects it,
    /// data is split accordingly and arrives intact.
    @Test func serverRespectsTheClientsRecordSize() throws {
        var client = SessionConfiguration()
        client.maxRecordPlaintext = Hello.minRecordPlaintext
        var server = SessionConfiguration()
        server.padding = .none
        var (pair, _) = try SessionStreamTests.withStreams(1, client: client, server: server)
        let payload = SessionStreamTests.pattern(20_000)
        #expect(try pair.serverWrite(1, payload) == payload.count)
        #expect(pair.clientData[1] == payload)
        let records = try pair.serverRecords()
        #expect(records.count > 20)
        #expect(records.allSatisfy { $0.length <= Hello.minRecordPlaintext })
        #expect(records.contains { $0.length == Hello.minRecordPlaintext })
        // The client's own records use the server's (default) size.
        #expect(try pair.clientWrite(1, payload) == payload.count)
        #expect(try pair.clientRecords().contains { $0.length > Hello.minRecordPlaintext })
    }

    /// A message must fit one record of the receiver's size. A menu too big for a client that
    /// announced 1024-byte records cannot be sent: the server ends the session with
    /// message_too_large (and the client learns that code) instead of splitting or trapping.
    @Test func menuTooLargeForTheClientsRecordSize() throws {
        var client = SessionConfiguration()
        client.maxRecordPlaintext = Hello.minRecordPlaintext
        let policy = TestPolicy()
        for i in 10..<40 {
            policy.applications.append((UInt32(i), ApplicationOffer(name: "app\(i)", expectedRequestBody: ["field": "string"]), false))
        }
        var pair = SessionPair(.ik, policy: policy, client: client, server: SessionConfiguration())
        try pair.establish()
        #expect(pair.serverSeen.last == .closed(.messageTooLarge))
        #expect(pair.clientSeen.last == .closed(.messageTooLarge))
        #expect(pair.menus.isEmpty)
        #expect(try pair.serverRecords().allSatisfy { $0.length <= Hello.minRecordPlaintext })
    }

    @Test func oversizeRecordToTheServer() throws {
        var server = SessionConfiguration()
        server.maxRecordPlaintext = Hello.minRecordPlaintext
        var pair = SessionPair(.ik, client: SessionConfiguration(), server: server)
        try pair.establish()
        var forger = try pair.clientForger()
        // Exactly the limit is fine…
        pair.deliverToServer(forger.seal(plaintext: Frame.ping(1).encoded + [UInt8](repeating: 0, count: Hello.minRecordPlaintext - 11)))
        #expect(pair.server.state == .established)
        // …one byte more is not.
        pair.deliverToServer(forger.seal(plaintext: [UInt8](repeating: 0, count: Hello.minRecordPlaintext + 1)))
        #expect(pair.serverSeen.last == .closed(.recordTooLarge))
        pair.pump()
        #expect(pair.clientSeen.last == .closed(.recordTooLarge))
    }

    @Test func oversizeRecordToTheClient() throws {
        var client = SessionConfiguration()
        client.maxRecordPlaintext = 2000
        var pair = SessionPair(.ik, client: client, server: SessionConfiguration())
        try pair.establish()
        var forger = try pair.serverForger()
        pair.deliverToClient(forger.seal(plaintext: [UInt8](repeating: 0, count: 2001)))
        #expect(pair.clientSeen.last == .closed(.recordTooLarge))
    }

    /// A length above 65519 can never be valid, whatever the body.
    @Test func declaredLengthAboveTheMaximum() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        var forger = try pair.clientForger()
        pair.deliverToServer(forger.seal(plaintext: [0], declaredLength: RecordLayout.maxPlaintext + 1))
        #expect(pair.serverSeen.last == .closed(.recordTooLarge))
    }

    @Test func emptyRecord() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        var forger = try pair.clientForger()
        pair.deliverToServer(forger.seal(plaintext: []))
        #expect(pair.serverSeen.last == .closed(.recordEmpty))
        pair.pump()
        #expect(pair.clientSeen.last == .closed(.recordEmpty))
    }

    /// A header that promises more than the body holds: the body fails authentication once
    /// enough bytes arrived, or the stream ends inside the record.
    @Test func headerLongerThanTheBody() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        var forger = try pair.clientForger()
        var copy = pair
        let record = forger.seal(plaintext: Frame.ping(1).encoded, declaredLength: 100)
        pair.deliverToServer(record)
        #expect(pair.server.state == .established)  // waiting for 100 + 16 bytes
        pair.serverEndOfInput()
        #expect(pair.serverSeen.last == .closed(.recordTruncated))
        copy.deliverToServer(record + [UInt8](repeating: 0, count: 200))
        #expect(copy.serverSeen.last == .closed(.recordTampered))
    }

    @Test func messageTooLarge() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let json = [UInt8]("{\"client_session_id\":\"\(pair.client.clientSessionID)\",\"x\":\"".utf8)
        let big = json + [UInt8](repeating: UInt8(ascii: "a"), count: SessionMessage.Limits.maxEncodedSize - json.count + 1) + Array("\"}".utf8)
        try pair.clientSends([.message(kind: SessionMessage.Kind.serviceRequest.rawValue, json: big)])
        #expect(pair.serverSeen.last == .closed(.messageTooLarge))
        #expect(pair.clientSeen.last == .closed(.messageTooLarge))
    }

    // MARK: - Rekey

    /// Both sides rekey after 1 MiB; more than 4 MiB each way arrive intact, with REKEY frames
    /// on the wire in both directions (and the receivers' 2 MiB limit never hit).
    @Test func rekeyUnderLoad() throws {
        var config = SessionConfiguration()
        config.rekeyAfterBytes = 1 << 20
        config.rekeyLimit = 2 << 20
        var (pair, _) = try SessionStreamTests.withStreams(1, client: config, server: config)
        let total = (4 << 20) + 123_457
        let up = SessionStreamTests.pattern(total, seed: 3)
        let down = SessionStreamTests.pattern(total, seed: 4)
        var sentUp = 0, sentDown = 0, consumedUp = 0, consumedDown = 0
        for _ in 0..<1_000 where consumedUp < total || consumedDown < total {
            if sentUp < total { sentUp += try up[sentUp...].withUnsafeBytes { try pair.client.write(stream: 1, $0) } }
            if sentDown < total { sentDown += try down[sentDown...].withUnsafeBytes { try pair.server.write(stream: 1, $0) } }
            pair.pump()
            let atServer = pair.serverData[1]?.count ?? 0
            let atClient = pair.clientData[1]?.count ?? 0
            if atServer > consumedUp { try pair.server.consumed(stream: 1, count: atServer - consumedUp); consumedUp = atServer }
            if atClient > consumedDown { try pair.client.consumed(stream: 1, count: atClient - consumedDown); consumedDown = atClient }
            pair.pump()
        }
        #expect(pair.server.state == .established)
        #expect(pair.client.state == .established)
        #expect(pair.serverData[1] == up)
        #expect(pair.clientData[1] == down)
        let upRekeys = try pair.clientRecords().filter { $0.frames.contains(.rekey) }.count
        let downRekeys = try pair.serverRecords().filter { $0.frames.contains(.rekey) }.count
        #expect(upRekeys >= 4)
        #expect(downRekeys >= 4)
        // The session still works under the new keys.
        try pair.client.ping(5)
        pair.pump()
        #expect(try pair.serverRecords().last?.frames == [.pong(5)])
    }

    /// A sender that never rekeys hits the receiver's rekey_limit.
    @Test func rekeyOverdue() throws {
        var server = SessionConfiguration()
        server.rekeyLimit = Hello.minRekeyLimit
        var pair = SessionPair(.ik, client: SessionConfiguration(), server: server)
        try pair.establish()
        var forger = try pair.clientForger()
        let full = [UInt8](repeating: 0, count: RecordLayout.maxPlaintext)
        var sent = try pair.clientRecords().reduce(0) { $0 + $1.length }
        while sent + full.count <= Int(Hello.minRekeyLimit) {
            pair.deliverToServer(forger.seal(plaintext: full))
            sent += full.count
        }
        #expect(pair.server.state == .established)
        pair.deliverToServer(forger.seal(plaintext: full))
        #expect(pair.serverSeen.last == .closed(.rekeyOverdue))
    }

    /// After a REKEY frame, a record sealed with the old key is tampered.
    @Test func recordUnderTheOldKeyAfterRekey() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        var forger = try pair.clientForger()
        let stale = forger  // the key before REKEY
        pair.deliverToServer(forger.seal([.rekey]))
        #expect(pair.server.state == .established)
        var old = stale
        _ = old.seal([.ping(0)])  // the REKEY record's nonces
        pair.deliverToServer(old.seal([.ping(1)]))
        #expect(pair.serverSeen.last == .closed(.recordTampered))
    }

    // MARK: - Padding

    /// fixed(1024): every record the server sends is 1024 + 34 bytes on the wire.
    @Test func fixedPaddingMakesEveryRecordTheSameSize() throws {
        var server = SessionConfiguration()
        server.padding = .fixed(1024)
        var pair = SessionPair(.xx, client: SessionConfiguration(), server: server)
        try pair.establish()
        _ = try pair.login()
        let token = try pair.token(1)
        let stream = try pair.client.openStream(applicationToken: token)
        pair.pump()
        let payload = SessionStreamTests.pattern(5_000)
        for n in [1, 10, 1017, 1018, 3000] { try pair.serverWrite(1, Array(payload[0..<n])) }
        try pair.client.ping(1)
        pair.pump()
        pair.server.close(code: .shuttingDown) { _ in }
        pair.pump()

        let wire = pair.toClientWire.dropFirst(HandshakeLayout.message2Length)
        let records = try pair.serverRecords()
        #expect(records.count >= 10)
        #expect(records.allSatisfy { $0.length == 1024 })
        #expect(wire.count == records.count * (1024 + RecordLayout.overhead), "every record is 1024 bytes, under fixed(1024)")
        #expect(pair.clientData[stream] == [1, 10, 1017, 1018, 3000].flatMap { Array(payload[0..<$0]) })
        #expect(pair.clientSeen.last == .closed(.shuttingDown))
        // The client, on the default buckets, sends records of more than one size.
        #expect(Set(try pair.clientRecords().map(\.length)).count > 1)
    }

    /// A client that asks for padding gets records in multiples of 256 from a server with no policy.
    @Test func requestedPadding() throws {
        var client = SessionConfiguration()
        client.requestPadding = true
        client.padding = .none
        var server = SessionConfiguration()
        server.padding = .none
        var (pair, _) = try SessionStreamTests.withStreams(1, client: client, server: server)
        for n in [1, 255, 300, 5000] { try pair.serverWrite(1, SessionStreamTests.pattern(n)) }
        let records = try pair.serverRecords()
        #expect(records.allSatisfy { $0.length % 256 == 0 || $0.length == RecordLayout.maxPlaintext })
        #expect(pair.clientData[1]?.count == 1 + 255 + 300 + 5000)
        #expect(try pair.clientRecords().contains { $0.length % 256 != 0 })
    }
}
