import Testing
@testable import USPCore

/// Sends one message each way over the transport keys of a finished handshake.
func hsExpectTransportWorks(_ client: HandshakeResult, _ server: HandshakeResult, sourceLocation: SourceLocation = #_sourceLocation) throws {
    var c = client.transport, s = server.transport
    for round in 0..<3 {
        let up: [UInt8] = Array("client to server \(round)".utf8)
        let sealedUp = try c.send.encryptWithAd([], up)
        #expect(sealedUp.count == up.count + 16, sourceLocation: sourceLocation)
        #expect(Array(sealedUp.prefix(up.count)) != up, "ciphertext equals plaintext", sourceLocation: sourceLocation)
        #expect(try s.receive.decryptWithAd([], sealedUp) == up, sourceLocation: sourceLocation)

        let down: [UInt8] = Array("server to client \(round)".utf8)
        let sealedDown = try s.send.encryptWithAd([], down)
        #expect(try c.receive.decryptWithAd([], sealedDown) == down, sourceLocation: sourceLocation)
    }
    // The two directions use different keys: a client-sent ciphertext does not open as server-sent.
    var c2 = client.transport, s2 = server.transport
    let probe = try c2.send.encryptWithAd([], [1, 2, 3])
    #expect(throws: NoiseError.decryptFailed, sourceLocation: sourceLocation) { try s2.send.decryptWithAd([], probe) }
}

@Suite("Handshake end to end")
struct HandshakeEndToEndTests {
    @Test("every pattern: equal hashes, working keys, version 1, hellos delivered, fixed lengths",
          arguments: HandshakeLayout.Pattern.allCases)
    func endToEnd(pattern: HandshakeLayout.Pattern) throws {
        let clientStatic = hsKeyPair(101), serverStatic = hsKeyPair(202)
        let ch = hsHello(7), sh = hsHello(8)
        let run = try hsRunHandshake(pattern, clientStatic: clientStatic, serverStatic: serverStatic,
                                     clientHello: ch, serverHello: sh)

        #expect(run.client.pattern == pattern)
        #expect(run.server.pattern == pattern)
        #expect(run.serverSawMessage1.pattern == pattern)
        #expect(run.client.handshakeHash.count == 32)
        #expect(run.client.handshakeHash == run.server.handshakeHash)
        #expect(run.client.version == 1)
        #expect(run.server.version == 1)
        #expect(run.client.peerHello == sh)
        #expect(run.server.peerHello == ch)
        #expect(run.client.localHello == ch)
        #expect(run.server.localHello == sh)
        // The client always learns (or already knew) the server's static key.
        #expect(run.client.remoteStatic == serverStatic.publicKey)

        #expect(run.message1.count == 1024)
        #expect(run.message2.count == 160)
        if pattern == .xx {
            #expect(run.message3?.count == 128)
        } else {
            #expect(run.message3 == nil)
        }
        try hsExpectTransportWorks(run.client, run.server)
    }

    @Test("the server learns the client static in IK (message 1) and XX (message 3), never in NK")
    func clientStaticVisibility() throws {
        let clientStatic = hsKeyPair(5)
        let ik = try hsRunHandshake(.ik, clientStatic: clientStatic)
        #expect(ik.serverSawMessage1.clientStatic == clientStatic.publicKey)
        #expect(ik.server.remoteStatic == clientStatic.publicKey)

        let xx = try hsRunHandshake(.xx, clientStatic: clientStatic)
        #expect(xx.serverSawMessage1.clientStatic == nil, "XX message 1 carries no static key")
        #expect(xx.server.remoteStatic == clientStatic.publicKey, "XX message 3 carries the client static")

        let nk = try hsRunHandshake(.nk, clientStatic: clientStatic)
        #expect(nk.serverSawMessage1.clientStatic == nil)
        #expect(nk.server.remoteStatic == nil)
    }

    @Test("XX: the client sees the server static and hello after message 2, before committing to message 3")
    func xxMessage2Outcome() throws {
        let serverStatic = hsKeyPair(9)
        let sh = hsHello(3)
        var client = try InitiatorHandshake(mode: .firstContact(clientStatic: hsKeyPair(10)))
        var server = ResponderHandshake(staticKey: serverStatic)
        let m1 = try client.writeMessage1(hello: hsHello(4))
        let seen = try server.readMessage1(m1)
        #expect(seen.pattern == .xx)
        #expect(seen.clientHello == nil)
        #expect(seen.earlyFrames.isEmpty)
        #expect(seen.clientEphemeral == Elligator2.point(from: m1.prefix(32)))
        let (m2, serverResult) = try server.writeMessage2(hello: sh)
        #expect(serverResult == nil, "XX is not finished after message 2")
        guard case .needMessage3(let rs, let hello) = try client.readMessage2(m2) else {
            Issue.record("XX message 2 must ask for message 3")
            return
        }
        #expect(rs == serverStatic.publicKey)
        #expect(hello == sh)
    }

    @Test("the negotiated version is the highest in both ranges, on both sides", arguments: HandshakeLayout.Pattern.allCases)
    func negotiatedVersion(pattern: HandshakeLayout.Pattern) throws {
        let run = try hsRunHandshake(pattern, clientHello: hsHello(1, versionMin: 1, versionMax: 3),
                                     serverHello: hsHello(2, versionMin: 2, versionMax: 5))
        #expect(run.client.version == 3)
        #expect(run.server.version == 3)
    }

    @Test("a client offering only version 2 gets versionMismatch", arguments: HandshakeLayout.Pattern.allCases)
    func versionMismatchInHandshake(pattern: HandshakeLayout.Pattern) throws {
        let serverStatic = hsKeyPair(2)
        let v2 = hsHello(1, versionMin: 2, versionMax: 2)
        hsExpect(.versionMismatch) { () throws(USPError) in
            _ = try hsRunHandshake(pattern, serverStatic: serverStatic, clientHello: v2, serverHello: hsHello(2))
        }
        // Where exactly: IK/NK fail when the server writes message 2 (nothing is sent);
        // XX fails when the client reads message 2 (checked against the hello given to
        // writeMessage1) or, if only message 3's hello is version 2, when it writes message 3.
        let mode: InitiatorHandshake.Mode = switch pattern {
        case .xx: .firstContact(clientStatic: hsKeyPair(1))
        case .ik: .knownServer(serverKey: serverStatic.publicKey, clientStatic: hsKeyPair(1))
        case .nk: .anonymous(serverKey: serverStatic.publicKey)
        }
        var client = try InitiatorHandshake(mode: mode)
        var server = ResponderHandshake(staticKey: serverStatic)
        let m1 = try client.writeMessage1(hello: v2)
        let seen = try server.readMessage1(m1)
        #expect(seen.pattern == pattern)
        if pattern == .xx {
            let (m2, _) = try server.writeMessage2(hello: hsHello(2))
            hsExpect(.versionMismatch) { () throws(USPError) in _ = try client.readMessage2(m2) }

            var late = try InitiatorHandshake(mode: mode)
            var lateServer = ResponderHandshake(staticKey: serverStatic)
            _ = try lateServer.readMessage1(try late.writeMessage1(hello: hsHello(1)))
            _ = try late.readMessage2(try lateServer.writeMessage2(hello: hsHello(2)).message)
            hsExpect(.versionMismatch) { () throws(USPError) in _ = try late.writeMessage3(hello: v2) }
            // The failed writeMessage3 sent nothing and changed nothing: a good hello still works.
            let (m3, clientResult) = try late.writeMessage3(hello: hsHello(1))
            let serverResult = try lateServer.readMessage3(m3)
            #expect(clientResult.handshakeHash == serverResult.handshakeHash)
        } else {
            hsExpect(.versionMismatch) { () throws(USPError) in _ = try server.writeMessage2(hello: hsHello(2)) }
        }
    }

    @Test("a client reading a message 2 whose hello shares no version throws versionMismatch (non-USP responder)")
    func clientChecksServerVersion() throws {
        // A server built from raw Noise, which does not negotiate, answers with a version-2-only hello.
        let serverStatic = hsKeyPair(2)
        var client = try InitiatorHandshake(mode: .knownServer(serverKey: serverStatic.publicKey, clientStatic: hsKeyPair(1)))
        let m1 = try client.writeMessage1(hello: hsHello(1))
        var raw = try HandshakeState(protocol: HandshakeLayout.ik, role: .responder, prologue: HandshakeLayout.prologue,
                                     localStatic: serverStatic, ephemeralEncoding: .elligator2)
        _ = try raw.readMessage(m1)
        let payload = hsHello(2, versionMin: 2, versionMax: 2).bytes + [UInt8](repeating: 0, count: 112 - 64)
        let m2 = try raw.writeMessage(payload: payload).message
        #expect(m2.count == 160)
        hsExpect(.versionMismatch) { () throws(USPError) in _ = try client.readMessage2(m2) }
    }

    @Test("an invalid hello inside an authentic IK/NK message 1 is rejected with invalidHello", arguments: [HandshakeLayout.Pattern.ik, .nk])
    func invalidHelloInMessage1(pattern: HandshakeLayout.Pattern) throws {
        let serverStatic = hsKeyPair(2)
        var bad = hsHello(1)
        bad.maxStreams = 0
        let mode: InitiatorHandshake.Mode = pattern == .ik
            ? .knownServer(serverKey: serverStatic.publicKey, clientStatic: hsKeyPair(1))
            : .anonymous(serverKey: serverStatic.publicKey)
        var client = try InitiatorHandshake(mode: mode)
        let m1 = try client.writeMessage1(hello: bad)
        var server = ResponderHandshake(staticKey: serverStatic)
        hsExpect(.invalidHello) { () throws(USPError) in _ = try server.readMessage1(m1) }
    }

    @Test("a deterministic RandomSource makes every handshake message reproducible", arguments: HandshakeLayout.Pattern.allCases)
    func deterministicRandomness(pattern: HandshakeLayout.Pattern) throws {
        func run(_ seed: UInt64) throws -> HSCompletedHandshake {
            try hsRunHandshake(pattern, clientRandom: HSSeededRandom(seed: seed), serverRandom: HSSeededRandom(seed: seed &+ 1000))
        }
        let a = try run(1), b = try run(1), c = try run(2)
        #expect(a.message1 == b.message1)
        #expect(a.message2 == b.message2)
        #expect(a.message3 == b.message3)
        #expect(a.client.handshakeHash == b.client.handshakeHash)
        #expect(a.message1 != c.message1)
        #expect(a.message2 != c.message2)
        #expect(a.client.handshakeHash != c.client.handshakeHash)
    }

    @Test("the handshake draws its ephemerals (and XX filler) from the injected RandomSource")
    func usesInjectedRandomness() throws {
        let clientRandom = HSSeededRandom(seed: 77), serverRandom = HSSeededRandom(seed: 78)
        _ = try hsRunHandshake(.xx, clientRandom: clientRandom, serverRandom: serverRandom)
        #expect(clientRandom.bytesDrawn >= 32 + 992, "client ephemeral and XX filler")
        #expect(serverRandom.bytesDrawn >= 32, "server ephemeral")
    }

    @Test("messages of the wrong length are refused before any cryptography")
    func wrongLengths() throws {
        let serverStatic = hsKeyPair(2)
        for n in [0, 32, 1023, 1025, 2048] {
            var server = ResponderHandshake(staticKey: serverStatic)
            hsExpect(.handshakeFailed, "message 1 of \(n) bytes") { () throws(USPError) in
                _ = try server.readMessage1([UInt8](repeating: 9, count: n))
            }
        }
        var client = try InitiatorHandshake(mode: .anonymous(serverKey: serverStatic.publicKey))
        var server = ResponderHandshake(staticKey: serverStatic)
        _ = try server.readMessage1(try client.writeMessage1(hello: Hello()))
        let (m2, _) = try server.writeMessage2(hello: Hello())
        for n in [0, 159, 161] {
            let wrong = n <= 160 ? Array(m2.prefix(n)) : m2 + [0]
            hsExpect(.handshakeFailed, "message 2 of \(n) bytes") { () throws(USPError) in _ = try client.readMessage2(wrong) }
        }
        guard case .finished = try client.readMessage2(m2) else {
            Issue.record("NK must finish after message 2")
            return
        }

        var xxClient = try InitiatorHandshake(mode: .firstContact(clientStatic: hsKeyPair(1)))
        var xxServer = ResponderHandshake(staticKey: serverStatic)
        _ = try xxServer.readMessage1(try xxClient.writeMessage1(hello: Hello()))
        _ = try xxClient.readMessage2(try xxServer.writeMessage2(hello: Hello()).message)
        let (m3, _) = try xxClient.writeMessage3(hello: Hello())
        for wrong in [Array(m3.prefix(127)), m3 + [0], []] {
            hsExpect(.handshakeFailed, "message 3 of \(wrong.count) bytes") { () throws(USPError) in _ = try xxServer.readMessage3(wrong) }
        }
        _ = try xxServer.readMessage3(m3)
    }

    @Test("message 1 payload sizes add up to 1024 bytes and early-frame room is as documented")
    func layoutArithmetic() {
        #expect(HandshakeLayout.message1PayloadLength(.ik) == 928)
        #expect(HandshakeLayout.message1PayloadLength(.nk) == 976)
        #expect(HandshakeLayout.message1PayloadLength(.xx) == 992)
        #expect(HandshakeLayout.earlyFrameCapacity(.ik) == 864)
        #expect(HandshakeLayout.earlyFrameCapacity(.nk) == 912)
        #expect(HandshakeLayout.earlyFrameCapacity(.xx) == 0)
        #expect(HandshakeLayout.message2PayloadLength(.xx) == 64)
        #expect(HandshakeLayout.message2PayloadLength(.ik) == 112)
        #expect(HandshakeLayout.message2PayloadLength(.nk) == 112)
    }
}

@Suite("Handshake pattern detection and stealth")
struct HandshakePatternDetectionTests {
    @Test("the server identifies IK, NK and XX from the bytes alone", arguments: HandshakeLayout.Pattern.allCases)
    func detection(pattern: HandshakeLayout.Pattern) throws {
        // Same server instance type, no hint: it must find the pattern by trial decryption.
        let run = try hsRunHandshake(pattern)
        #expect(run.serverSawMessage1.pattern == pattern)
        #expect(run.serverSawMessage1.clientEphemeral == Elligator2.point(from: run.message1.prefix(32)))
    }

    @Test("early frames in IK/NK come back byte for byte, followed only by zero padding",
          arguments: [HandshakeLayout.Pattern.ik, .nk])
    func earlyFrames(pattern: HandshakeLayout.Pattern) throws {
        let capacity = HandshakeLayout.earlyFrameCapacity(pattern)
        let random = HSSeededRandom(seed: 4)
        for length in [0, 1, 100, capacity - 1, capacity] {
            var frames = random.bytes(length)
            if let last = frames.indices.last { frames[last] |= 1 }  // never ends in a zero byte
            let run = try hsRunHandshake(pattern, earlyFrames: frames)
            let got = run.serverSawMessage1.earlyFrames
            #expect(got.count == capacity)
            #expect(Array(got.prefix(length)) == frames)
            #expect(got.dropFirst(length).allSatisfy { $0 == 0 })
            #expect(run.serverSawMessage1.clientHello == hsHello(11))
        }
    }

    @Test("stealth: an XX message 1 throws patternNotAllowed")
    func stealthRefusesXX() throws {
        let serverStatic = hsKeyPair(2)
        var client = try InitiatorHandshake(mode: .firstContact(clientStatic: hsKeyPair(1)))
        let m1 = try client.writeMessage1(hello: Hello())
        var server = ResponderHandshake(staticKey: serverStatic, allowFirstContact: false)
        hsExpect(.patternNotAllowed) { () throws(USPError) in _ = try server.readMessage1(m1) }
        #expect(server.pattern == nil)
    }

    @Test("stealth: 1024 random bytes throw patternNotAllowed")
    func stealthRefusesRandomBytes() throws {
        let serverStatic = hsKeyPair(2)
        let random = HSSeededRandom(seed: 99)
        for _ in 0..<20 {
            var server = ResponderHandshake(staticKey: serverStatic, allowFirstContact: false)
            let noise = random.bytes(1024)
            hsExpect(.patternNotAllowed) { () throws(USPError) in _ = try server.readMessage1(noise) }
        }
    }

    @Test("stealth: IK and NK messages for a different server key are not accepted", arguments: [HandshakeLayout.Pattern.ik, .nk])
    func stealthRefusesOtherServerKey(pattern: HandshakeLayout.Pattern) throws {
        let otherServer = hsKeyPair(3)
        let mode: InitiatorHandshake.Mode = pattern == .ik
            ? .knownServer(serverKey: otherServer.publicKey, clientStatic: hsKeyPair(1))
            : .anonymous(serverKey: otherServer.publicKey)
        var client = try InitiatorHandshake(mode: mode)
        let m1 = try client.writeMessage1(hello: Hello())
        var server = ResponderHandshake(staticKey: hsKeyPair(2), allowFirstContact: false)
        hsExpect(.patternNotAllowed) { () throws(USPError) in _ = try server.readMessage1(m1) }
        // The intended server takes the very same bytes.
        var intended = ResponderHandshake(staticKey: otherServer, allowFirstContact: false)
        #expect(try intended.readMessage1(m1).pattern == pattern)
    }

    @Test("with first contact allowed, a message pinned to another server key is read as XX, and the client then rejects message 2",
          arguments: [HandshakeLayout.Pattern.ik, .nk])
    func wrongKeyBecomesXX(pattern: HandshakeLayout.Pattern) throws {
        let otherServer = hsKeyPair(3)
        let mode: InitiatorHandshake.Mode = pattern == .ik
            ? .knownServer(serverKey: otherServer.publicKey, clientStatic: hsKeyPair(1))
            : .anonymous(serverKey: otherServer.publicKey)
        var client = try InitiatorHandshake(mode: mode)
        let m1 = try client.writeMessage1(hello: Hello())
        var server = ResponderHandshake(staticKey: hsKeyPair(2))
        let seen = try server.readMessage1(m1)
        #expect(seen.pattern == .xx)
        #expect(seen.clientStatic == nil && seen.clientHello == nil)
        let (m2, _) = try server.writeMessage2(hello: Hello())
        hsExpect(.handshakeDecryptFailed) { () throws(USPError) in _ = try client.readMessage2(m2) }
    }

    @Test("with first contact allowed, 1024 random bytes become an XX handshake (no way to tell noise from XX message 1)")
    func randomBytesBecomeXXWhenAllowed() throws {
        let random = HSSeededRandom(seed: 5)
        for _ in 0..<10 {
            var server = ResponderHandshake(staticKey: hsKeyPair(2), allowFirstContact: true)
            let noise = random.bytes(1024)
            let seen = try server.readMessage1(noise)
            #expect(seen.pattern == .xx)
            #expect(server.pattern == .xx)
            #expect(seen.clientEphemeral == Elligator2.point(from: noise.prefix(32)), "the replay cache's key is the decoded ephemeral")
            let (m2, result) = try server.writeMessage2(hello: Hello())
            #expect(m2.count == 160)
            #expect(result == nil)
        }
    }

    @Test("a failed message 1 leaves the responder usable: the real message 1 afterwards is accepted")
    func failedMessage1LeavesStateUnchanged() throws {
        let serverStatic = hsKeyPair(2)
        var server = ResponderHandshake(staticKey: serverStatic, allowFirstContact: false)
        hsExpect(.patternNotAllowed) { () throws(USPError) in _ = try server.readMessage1(HSSeededRandom(seed: 1).bytes(1024)) }
        hsExpect(.handshakeFailed) { () throws(USPError) in _ = try server.readMessage1([1, 2, 3]) }
        var client = try InitiatorHandshake(mode: .knownServer(serverKey: serverStatic.publicKey, clientStatic: hsKeyPair(1)))
        let m1 = try client.writeMessage1(hello: hsHello(1))
        #expect(try server.readMessage1(m1).pattern == .ik)
        let (m2, serverResult) = try server.writeMessage2(hello: hsHello(2))
        guard case .finished(let clientResult) = try client.readMessage2(m2), let serverResult else {
            Issue.record("IK must finish")
            return
        }
        #expect(clientResult.handshakeHash == serverResult.handshakeHash)
        try hsExpectTransportWorks(clientResult, serverResult)
    }

    @Test("low-order ephemeral keys in message 1 throw lowOrderPoint, in stealth and not", arguments: [false, true])
    func lowOrderEphemeralInMessage1(allowFirstContact: Bool) throws {
        let rest = HSSeededRandom(seed: 12).bytes(1024 - 32)
        #expect(hsLowOrderRepresentatives.count >= 4)
        for representative in hsLowOrderRepresentatives {
            var server = ResponderHandshake(staticKey: hsKeyPair(2), allowFirstContact: allowFirstContact)
            hsExpect(.lowOrderPoint, "representative \(representative.prefix(4))") { () throws(USPError) in _ = try server.readMessage1(representative + rest) }
        }
    }

    @Test("a low-order server ephemeral in message 2 throws lowOrderPoint and leaves the client usable",
          arguments: HandshakeLayout.Pattern.allCases)
    func lowOrderEphemeralInMessage2(pattern: HandshakeLayout.Pattern) throws {
        let serverStatic = hsKeyPair(2)
        let mode: InitiatorHandshake.Mode = switch pattern {
        case .xx: .firstContact(clientStatic: hsKeyPair(1))
        case .ik: .knownServer(serverKey: serverStatic.publicKey, clientStatic: hsKeyPair(1))
        case .nk: .anonymous(serverKey: serverStatic.publicKey)
        }
        var client = try InitiatorHandshake(mode: mode)
        var server = ResponderHandshake(staticKey: serverStatic)
        _ = try server.readMessage1(try client.writeMessage1(hello: Hello()))
        let (m2, _) = try server.writeMessage2(hello: Hello())
        for representative in hsLowOrderRepresentatives {
            hsExpect(.lowOrderPoint) { () throws(USPError) in _ = try client.readMessage2(representative + m2.dropFirst(32)) }
        }
        _ = try client.readMessage2(m2)
    }
}

/// What an attacker can put on the wire to make a peer use a low-order point, now that `e` travels
/// as an Elligator 2 representative (docs/PROTOCOL.md §3.2.2): the representatives of the low-order
/// points below that have one (u = 0 is the representative 0), with both signs and random top bits.
let hsLowOrderRepresentatives: [[UInt8]] = hsLowOrderPoints.flatMap { u in
    [UInt8(0), 1, 0xc0, 0x41].compactMap { Elligator2.representative(of: u, tweak: $0) }
}

/// X25519 public keys whose DH result is all zeros (RFC 7748 §6.1 and the curve's small subgroup),
/// including non-canonical encodings.
let hsLowOrderPoints: [[UInt8]] = [
    // 0
    [UInt8](repeating: 0, count: 32),
    // 1
    [1] + [UInt8](repeating: 0, count: 31),
    // order-8 points
    hsHex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    hsHex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    // p - 1
    hsHex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    // p (non-canonical 0), p + 1 (non-canonical 1)
    hsHex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    hsHex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    // 0 and 1 with the ignored top bit set
    [UInt8](repeating: 0, count: 31) + [0x80],
    [1] + [UInt8](repeating: 0, count: 30) + [0x80],
]

func hsHex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = s.makeIterator()
    while let a = it.next(), let b = it.next() {
        out.append(UInt8(String([a, b]), radix: 16)!)
    }
    return out
}

@Suite("Handshake message 1 has no fixed cleartext")
struct HandshakeIndistinguishabilityTests {
    /// Agreement at 1024 positions between independent uniform bytes is Binomial(1024, 1/256):
    /// mean 4, standard deviation about 2. 24 is ten standard deviations out.
    static let chanceBound = 24

    @Test("two IK message 1s to the same server share no byte positions beyond chance")
    func ikMessage1sDiffer() throws {
        let serverStatic = hsKeyPair(2), clientStatic = hsKeyPair(1)
        var a = try InitiatorHandshake(mode: .knownServer(serverKey: serverStatic.publicKey, clientStatic: clientStatic))
        var b = try InitiatorHandshake(mode: .knownServer(serverKey: serverStatic.publicKey, clientStatic: clientStatic))
        // Same client, same server, same hello, same early frames: only the ephemeral differs.
        let m1 = try a.writeMessage1(hello: hsHello(1), earlyFrames: [1, 2, 3])
        let m2 = try b.writeMessage1(hello: hsHello(1), earlyFrames: [1, 2, 3])
        #expect(m1.prefix(32) != m2.prefix(32), "ephemerals")
        #expect(m1.dropFirst(32) != m2.dropFirst(32), "encrypted static, hello, frames and padding")
        #expect(hsAgreeingPositions(Array(m1.prefix(32)), Array(m2.prefix(32))) <= 8)
        #expect(hsAgreeingPositions(m1, m2) <= Self.chanceBound)
    }

    @Test("message 1s of different patterns share no byte positions beyond chance")
    func patternsLookAlike() throws {
        let serverStatic = hsKeyPair(2)
        var ik = try InitiatorHandshake(mode: .knownServer(serverKey: serverStatic.publicKey, clientStatic: hsKeyPair(1)))
        var nk = try InitiatorHandshake(mode: .anonymous(serverKey: serverStatic.publicKey))
        var xx = try InitiatorHandshake(mode: .firstContact(clientStatic: hsKeyPair(1)))
        let messages = [try ik.writeMessage1(hello: Hello()), try nk.writeMessage1(hello: Hello()), try xx.writeMessage1(hello: Hello())]
        for i in 0..<3 {
            for j in (i + 1)..<3 {
                #expect(hsAgreeingPositions(messages[i], messages[j]) <= Self.chanceBound, "patterns \(i) and \(j)")
            }
        }
    }

    @Test("message 1's ephemeral is an Elligator 2 representative: it decodes to the key the server's DH uses, and its top two bits vary")
    func ephemeralIsHidden() throws {
        // A raw X25519 key is below 2^255 and always on the curve; a representative fills all 256
        // bits (the top two at random) and, read as a raw key, is on the curve only half the time.
        let serverStatic = hsKeyPair(2)
        var topBits = Set<UInt8>()
        for _ in 0..<64 {
            var client = try InitiatorHandshake(mode: .knownServer(serverKey: serverStatic.publicKey, clientStatic: hsKeyPair(1)))
            let m1 = try client.writeMessage1(hello: Hello())
            topBits.insert(m1[31] & 0xc0)
            var server = ResponderHandshake(staticKey: serverStatic, allowFirstContact: false)
            let seen = try server.readMessage1(m1)
            #expect(seen.pattern == .ik)
            #expect(seen.clientEphemeral == Elligator2.point(from: m1.prefix(32)))
        }
        #expect(topBits.count == 4, "64 message 1s showed only top bits \(topBits.sorted())")
    }

    @Test("no byte position of message 1 is constant across many handshakes", arguments: HandshakeLayout.Pattern.allCases)
    func noConstantPosition(pattern: HandshakeLayout.Pattern) throws {
        let serverStatic = hsKeyPair(2)
        var first: [UInt8]?
        var varies = [Bool](repeating: false, count: 1024)
        for _ in 0..<12 {
            let mode: InitiatorHandshake.Mode = switch pattern {
            case .xx: .firstContact(clientStatic: hsKeyPair(1))
            case .ik: .knownServer(serverKey: serverStatic.publicKey, clientStatic: hsKeyPair(1))
            case .nk: .anonymous(serverKey: serverStatic.publicKey)
            }
            var client = try InitiatorHandshake(mode: mode)
            let m1 = try client.writeMessage1(hello: Hello())
            if let first {
                for i in 0..<1024 where m1[i] != first[i] { varies[i] = true }
            } else {
                first = m1
            }
        }
        // With 12 samples a uniform byte repeats at one position with probability 256^-11.
        let constant = varies.indices.filter { !varies[$0] }
        #expect(constant.isEmpty, "constant positions: \(constant)")
    }
}
