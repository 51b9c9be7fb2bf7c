import PropertyBased
import Testing
@testable import USPCore
import USPTestSupport

/// Records that were tampered with, replayed, reordered or cut, and randomized input: the
/// sessions end with a code and never crash.
@Suite struct SessionHostileInputTests {
    /// An established pair with one echo stream and two server records (A, B) not yet delivered.
    static func twoPendingServerRecords() throws -> (SessionPair, [UInt8], [UInt8]) {
        var (pair, _) = try SessionStreamTests.withStreams(1)
        _ = try Array("first".utf8).withUnsafeBytes { try pair.server.write(stream: 1, $0) }
        let a = pair.server.drainOutbound { Array($0) }
        _ = try Array("second".utf8).withUnsafeBytes { try pair.server.write(stream: 1, $0) }
        let b = pair.server.drainOutbound { Array($0) }
        // Each is one record, padded to the smallest bucket (96 bytes of plaintext).
        #expect(a.count == 96 + RecordLayout.overhead)
        #expect(b.count == 96 + RecordLayout.overhead)
        return (pair, a, b)
    }

    @Test(arguments: [0, 17, 18, 25, 45])
    func flippedByteInAServerRecord(offset: Int) throws {
        var (pair, a, b) = try Self.twoPendingServerRecords()
        var bad = a
        bad[offset] ^= 0x40
        pair.deliverToClient(bad + b)
        #expect(pair.clientSeen.last == .closed(.recordTampered))
        #expect(pair.clientData[1] == nil)
        #expect(pair.client.state == .closed)
        // The client tells the server why.
        pair.pump()
        #expect(pair.serverSeen.last == .closed(.closedByPeer))
        #expect(try pair.clientRecords().last?.frames == [.close(code: USPError.Code.recordTampered.wireValue, reason: "record_tampered")])
    }

    @Test func flippedByteInAClientRecord() throws {
        var (pair, _) = try SessionStreamTests.withStreams(1)
        _ = try ([1, 2, 3] as [UInt8]).withUnsafeBytes { try pair.client.write(stream: 1, $0) }
        var record = pair.client.drainOutbound { Array($0) }
        record[record.count - 1] ^= 1  // the body's tag
        pair.deliverToServer(record)
        #expect(pair.serverSeen.last == .closed(.recordTampered))
        #expect(pair.serverData[1] == nil)
        pair.pump()
        #expect(pair.clientSeen.last == .closed(.recordTampered))
    }

    @Test func replayedRecord() throws {
        var (pair, a, _) = try Self.twoPendingServerRecords()
        pair.deliverToClient(a)
        #expect(pair.clientData[1] == Array("first".utf8))
        pair.deliverToClient(a)
        #expect(pair.clientSeen.last == .closed(.recordReplayed))
        #expect(pair.clientData[1] == Array("first".utf8))
    }

    @Test func reorderedRecords() throws {
        var (pair, a, b) = try Self.twoPendingServerRecords()
        pair.deliverToClient(b + a)
        #expect(pair.clientSeen.last == .closed(.recordReordered))
        #expect(pair.clientData[1] == nil)
    }

    @Test func droppedRecord() throws {
        var (pair, _, b) = try Self.twoPendingServerRecords()
        pair.deliverToClient(b)
        #expect(pair.clientSeen.last == .closed(.recordReordered))
    }

    @Test func replayedAndReorderedToTheServer() throws {
        var (pair, _) = try SessionStreamTests.withStreams(1)
        try pair.client.ping(1)
        let a = pair.client.drainOutbound { Array($0) }
        try pair.client.ping(2)
        let b = pair.client.drainOutbound { Array($0) }
        var replayed = pair
        pair.deliverToServer(b)
        #expect(pair.serverSeen.last == .closed(.recordReordered))
        replayed.deliverToServer(a + a)
        #expect(replayed.serverSeen.last == .closed(.recordReplayed))
    }

    @Test(arguments: [1, 17, 18, 19, 30])
    func cutMidRecordThenEndOfInput(keep: Int) throws {
        var (pair, a, _) = try Self.twoPendingServerRecords()
        pair.deliverToClient(Array(a.prefix(keep)))
        #expect(pair.client.state == .established)
        pair.clientEndOfInput()
        #expect(pair.clientSeen.last == .closed(.recordTruncated))
        #expect(pair.clientData[1] == nil)
    }

    /// Whole records then the end: no truncation, just no CLOSE.
    @Test func cutAtARecordBoundary() throws {
        var (pair, a, _) = try Self.twoPendingServerRecords()
        pair.deliverToClient(a)
        pair.clientEndOfInput()
        #expect(pair.clientSeen.last == .closed(.unexpectedEOF))
        #expect(pair.clientData[1] == Array("first".utf8))
    }

    /// Records split at every byte still arrive (the reader reassembles).
    @Test func recordsByteByByte() throws {
        var (pair, a, b) = try Self.twoPendingServerRecords()
        for byte in a + b { pair.deliverToClient([byte]) }
        #expect(pair.clientData[1] == Array("firstsecond".utf8))
        #expect(pair.client.state == .established)
    }

    // MARK: - Randomized

    /// One established session, copied for each input (sessions are values).
    static func establishedTemplate(_ pattern: HandshakeLayout.Pattern = .ik) throws -> SessionPair {
        var pair = SessionPair(pattern)
        try pair.establish()
        let token = try pair.token(1)
        _ = try pair.client.openStream(applicationToken: token)
        pair.pump()
        return pair
    }

    /// Random bytes after a completed handshake: the server never crashes and ends closed with
    /// a code, telling the client (a CLOSE with that code) unless the input simply stopped.
    @Test func randomBytesAfterHandshake() async throws {
        let template = try Self.establishedTemplate()
        let tapStart = UInt64(try template.serverRecords().count)
        let receive = try #require(template.client.handshake).transport.receive
        await propertyCheck(count: 300, input: Gen.uint8().array(of: 0...300)) { bytes in
            var server = template.server
            var closed: [USPError?] = []
            var other: [Seen] = []
            let onEvent: (ServerAction) -> Void = { e in
                if case .closed(let error) = e { closed.append(error) } else { other.append(Seen(e)) }
            }
            server.receive(bytes, now: template.now, delegate: template.policy, onEvent: onEvent)
            server.endOfInput(onEvent: onEvent)
            #expect(server.state == .closed)
            #expect(closed.count == 1)
            #expect(other.isEmpty)
            let code = try #require(closed.first ?? nil).code
            let sent = server.drainOutbound { Array($0) }
            var tap = RecordTap(receiving: receive, startingAt: tapStart)
            let frames = try tap.feed(sent).flatMap(\.frames)
            if code == .unexpectedEOF {
                #expect(bytes.isEmpty)
                #expect(frames.isEmpty)
            } else {
                #expect([.recordTampered, .recordReplayed, .recordReordered, .recordTruncated, .recordTooLarge].contains(code))
                #expect(frames == [.close(code: code.wireValue, reason: code.name)])
            }
        }
    }

    /// Random bytes at a stealth server: not one byte in answer, whatever arrives.
    @Test func randomBytesAtAStealthServer() async throws {
        await propertyCheck(count: 100, input: Gen.uint8().array(of: 0...2100)) { bytes in
            var server = ServerSession(staticKey: SessionPair.serverKey, peerAddress: "192.0.2.1", allowFirstContact: false,
                                       random: SeededRandom(seed: 1))
            var closed: [USPError?] = []
            server.receive(bytes, now: Timestamp(seconds: 1_800_000_000), delegate: TestPolicy()) { e in
                if case .closed(let error) = e { closed.append(error) }
            }
            #expect(server.outboundByteCount == 0)
            server.endOfInput { e in if case .closed(let error) = e { closed.append(error) } }
            #expect(server.outboundByteCount == 0)
            #expect(closed.count == 1)
            #expect(closed.first??.code != nil)
        }
    }

    /// What the generator knows of the session it writes for, so most frames are plausible.
    struct FuzzState {
        var nextOpen: UInt32
        var presentation: String
        var sessionID: String
    }

    /// Frames that could matter in a session: mostly well-formed and aimed at streams that exist
    /// (so sessions live long enough to reach deep states), with real messages and token
    /// presentations, and now and then anything at all.
    static func sessionFrame(_ rng: inout any SeededRandomNumberGenerator, _ state: inout FuzzState) -> Frame {
        let live = max(1, state.nextOpen - 1)
        let stream = Int.random(in: 0..<20, using: &rng) == 0 ? UInt32.random(in: 1...live + 2, using: &rng) : UInt32.random(in: 1...live, using: &rng)
        let sessionID = Int.random(in: 0..<30, using: &rng) == 0 ? "c-other" : state.sessionID
        let roll = state.nextOpen == 1 && Bool.random(using: &rng) ? 11 : Int.random(in: 0...24, using: &rng)
        switch roll {
        case 0: return randomFrame(&rng)
        case 1...5: return .data(stream: stream, data: [UInt8](repeating: 7, count: Int.random(in: 1...3_000, using: &rng)))
        case 6: return .data(stream: stream, data: [UInt8](repeating: 7, count: Int.random(in: 1...40_000, using: &rng)))
        case 7, 8: return .window(stream: stream, increment: Int.random(in: 0..<10, using: &rng) == 0
            ? UInt32.random(in: 1...UInt32.max, using: &rng) : UInt32.random(in: 1...100_000, using: &rng))
        case 9: return .fin(stream: stream)
        case 10: return .reset(stream: stream, code: UInt16.random(in: 0...700, using: &rng))
        case 11...13:
            let action: ApplicationAction = Int.random(in: 0..<8, using: &rng) == 0 ? "x" : .begin
            let body = (try? ApplicationSessionRequest(token: state.presentation, action: action).encodeOpenBody()) ?? []
            let id = Int.random(in: 0..<15, using: &rng) == 0 ? UInt32.random(in: 1...state.nextOpen, using: &rng) : state.nextOpen
            state.nextOpen = max(state.nextOpen, id + 1)
            return .open(stream: id, session: body)
        case 14: return .ping(UInt64.random(in: 0...UInt64.max, using: &rng))
        case 15: return Bool.random(using: &rng) ? .accept(opener: stream, acceptor: stream) : .pong(1)
        case 16: return .close(code: UInt16.random(in: 0...700, using: &rng), reason: "")
        case 17: return .rekey
        default:
            let messages: [SessionMessage] = [
                .initialRequest(InitialRequest(clientSessionID: sessionID)),
                .initialRequest(InitialRequest(clientSessionID: sessionID, applicationSession: ApplicationSessionRequest(
                    token: state.presentation, action: [.end, "status", "nope"].randomElement(using: &rng)!))),
                .initialRequest(InitialRequest(clientSessionID: sessionID, applicationSession: ApplicationSessionRequest(
                    token: state.presentation, action: .begin, clientTCPStream: state.nextOpen))),
                .serviceRequest(ServiceRequest(clientSessionID: sessionID, services: [1: [:], 3: ["user": "x"], 99: [:]])),
                .serviceRequest(ServiceRequest(clientSessionID: sessionID, authentication: .credentials(["user": "alice", "password": "correct horse"]),
                                               services: [2: ["zone": .integer(1)]])),
                .serviceRequest(ServiceRequest(clientSessionID: sessionID, authentication: .invalidateTokens([state.presentation]))),
                .serviceRequest(ServiceRequest(clientSessionID: sessionID, authorizationToken: state.presentation, services: [3: ["user": "x"]])),
                .menu(ApplicationMenu(serverSessionID: "s-x")),
                .error(SessionErrorMessage(.internalError)),
            ]
            let weights = [1, 4, 1, 4, 2, 2, 2, 1, 1]
            var pick = Int.random(in: 0..<weights.reduce(0, +), using: &rng)
            var index = 0
            while pick >= weights[index] { pick -= weights[index]; index += 1 }
            if case .initialRequest(let r) = messages[index], r.applicationSession?.clientTCPStream != nil { state.nextOpen += 1 }
            return (try? messageFrame(messages[index])) ?? .ping(0)
        }
    }

    /// Random sequences of valid records of plausible frames, in both server states after the
    /// handshake: never a crash; the session either goes on or ends with exactly one `.closed`,
    /// and a CLOSE carrying the code goes to the client unless the client itself closed.
    @Test(arguments: [false, true])
    func randomFramesNeverCrashTheServer(established: Bool) async throws {
        var template = SessionPair(.xx)
        let presentation: String
        if established {
            template = try Self.establishedTemplate(.xx)
            let token = try template.token(1)
            presentation = try TokenProof.present(secret: token, handshakeHash: template.client.handshake!.handshakeHash)
        } else {
            try template.handshakeWithoutInitialRequest()
            let token = try SessionServerStateTests.echoToken(template.policy)
            presentation = try TokenProof.present(secret: token, handshakeHash: template.client.handshake!.handshakeHash)
        }
        let policy = template.policy
        let rc = template.client.handshake!.transport.receive
        let sc = template.client.handshake!.transport.send
        let cr = UInt64(try template.clientRecords().count)
        let sr = UInt64(try template.serverRecords().count)
        let sessionID = template.client.clientSessionID
        let server0 = template.server
        let now = template.now
        let firstOpen = UInt32(server0.openStreamCount + 1)
        let gen = generator { rng in
            var state = FuzzState(nextOpen: firstOpen, presentation: presentation, sessionID: sessionID)
            var records: [[Frame]] = []
            if !established, Int.random(in: 0..<4, using: &rng) != 0 {
                records.append([(try? messageFrame(.initialRequest(InitialRequest(clientSessionID: sessionID)))) ?? .ping(0)])
            }
            for _ in 0..<Int.random(in: 1...12, using: &rng) {
                records.append((0..<Int.random(in: 1...4, using: &rng)).map { _ in SessionHostileInputTests.sessionFrame(&rng, &state) })
            }
            return records
        }
        await propertyCheck(count: 400, input: gen) { records in
            var server = server0
            var forger = RecordForger(sending: sc, startingAt: cr)
            var closed: [USPError?] = []
            let onEvent: (ServerAction) -> Void = { e in if case .closed(let error) = e { closed.append(error) } }
            var clientClosed = false
            for frames in records {
                var plaintext = frames.flatMap(\.encoded)
                if plaintext.count > RecordLayout.maxPlaintext { plaintext = Array(plaintext.prefix(RecordLayout.maxPlaintext)) }
                if frames.contains(.rekey) {
                    // A REKEY switches the forger's key too, after this record.
                    server.receive(forger.seal(plaintext: plaintext), now: now, delegate: policy, onEvent: onEvent)
                    try? forger.cipher.rekey()
                } else {
                    server.receive(forger.seal(plaintext: plaintext), now: now, delegate: policy, onEvent: onEvent)
                }
                if frames.contains(where: { if case .close = $0 { true } else { false } }) { clientClosed = true }
                if server.state == .closed { break }
            }
            #expect(closed.count <= 1)
            #expect((server.state == .closed) == (closed.count == 1))
            let sent = server.drainOutbound { Array($0) }
            var tap = RecordTap(receiving: rc, startingAt: sr)
            let answer = try tap.feed(sent).flatMap(\.frames)
            if let error = closed.first {
                if let error, error.code != .closedByPeer {
                    #expect(answer.last == .close(code: error.code.wireValue, reason: error.code.name), "\(error)")
                } else {
                    #expect(clientClosed)
                    #expect(!answer.contains { if case .close = $0 { true } else { false } })
                }
            } else {
                server.endOfInput(onEvent: onEvent)
                #expect(server.state == .closed)
                #expect(closed.count == 1)
                #expect(closed.first??.code == .unexpectedEOF)
            }
        }
    }

    /// The same against the client: random server frames never crash it.
    @Test func randomFramesNeverCrashTheClient() async throws {
        let template = try Self.establishedTemplate(.ik)
        let sendCipher = template.server.handshake!.transport.send
        let serverRecords = UInt64(try template.serverRecords().count)
        let client0 = template.client
        let now = template.now
        let gen = generator { rng in
            (0..<Int.random(in: 1...4, using: &rng)).map { _ -> [Frame] in
                var state = FuzzState(nextOpen: 2, presentation: "usp1p.x", sessionID: "c-x")
                return (0..<Int.random(in: 1...4, using: &rng)).map { _ -> Frame in
                    Bool.random(using: &rng) ? randomFrame(&rng) : SessionHostileInputTests.sessionFrame(&rng, &state)
                }
            }
        }
        await propertyCheck(count: 300, input: gen) { records in
            var client = client0
            var forger = RecordForger(sending: sendCipher, startingAt: serverRecords)
            var closed = 0
            for frames in records {
                var plaintext = frames.flatMap(\.encoded)
                if plaintext.count > RecordLayout.maxPlaintext { plaintext = Array(plaintext.prefix(RecordLayout.maxPlaintext)) }
                client.receive(forger.seal(plaintext: plaintext), now: now, delegate: TrustAnyServerKey()) { e in
                    if case .closed = e { closed += 1 }
                }
                if frames.contains(.rekey) { try? forger.cipher.rekey() }
                if client.state == .closed { break }
            }
            client.endOfInput { e in if case .closed = e { closed += 1 } }
            #expect(client.state == .closed)
            #expect(closed == 1)
        }
    }
}
