import Testing
@testable import USPCore

/// A varying flip mask, so the sweep also flips the top bit of byte 31 of an ephemeral key
/// (ignored by X25519 but hashed into `h`) and whole bytes.
private func mask(_ i: Int) -> UInt8 { [0x01, 0x80, 0xFF, 0x10][i % 4] }

private func clientMode(_ pattern: HandshakeLayout.Pattern, server: KeyPair, client: KeyPair = hsKeyPair(1)) -> InitiatorHandshake.Mode {
    switch pattern {
    case .xx: return .firstContact(clientStatic: client)
    case .ik: return .knownServer(serverKey: server.publicKey, clientStatic: client)
    case .nk: return .anonymous(serverKey: server.publicKey)
    }
}

@Suite("Handshake tampering and downgrade")
struct HandshakeTamperTests {
    @Test("stealth: flipping any single byte of an IK/NK message 1 makes the server refuse it",
          arguments: [HandshakeLayout.Pattern.ik, .nk])
    func message1FlipStealth(pattern: HandshakeLayout.Pattern) throws {
        let serverStatic = hsKeyPair(2)
        var client = try InitiatorHandshake(mode: clientMode(pattern, server: serverStatic))
        let m1 = try client.writeMessage1(hello: hsHello(1), earlyFrames: [7, 7, 7])
        var refused = 0
        for i in 0..<m1.count {
            var server = ResponderHandshake(staticKey: serverStatic, allowFirstContact: false)
            hsExpect(.patternNotAllowed, "byte \(i)") { () throws(USPError) in _ = try server.readMessage1(hsFlipped(m1, at: i, mask: mask(i))) }
            refused += 1
        }
        #expect(refused == 1024)
        var server = ResponderHandshake(staticKey: serverStatic, allowFirstContact: false)
        #expect(try server.readMessage1(m1).pattern == pattern, "the untouched message is accepted")
    }

    @Test("with XX allowed, a flipped IK/NK message 1 becomes an XX attempt and the client's readMessage2 fails",
          arguments: [HandshakeLayout.Pattern.ik, .nk])
    func message1FlipBecomesXX(pattern: HandshakeLayout.Pattern) throws {
        let serverStatic = hsKeyPair(2)
        var client = try InitiatorHandshake(mode: clientMode(pattern, server: serverStatic))
        let m1 = try client.writeMessage1(hello: hsHello(1))
        let positions = Array(stride(from: 0, to: 1024, by: 29)) + [31, 32, 33, 79, 80, 81, 1023]
        for i in positions {
            var server = ResponderHandshake(staticKey: serverStatic)
            let seen = try server.readMessage1(hsFlipped(m1, at: i, mask: mask(i)))
            #expect(seen.pattern == .xx, "byte \(i)")
            #expect(seen.clientHello == nil && seen.clientStatic == nil && seen.earlyFrames.isEmpty)
            let (m2, _) = try server.writeMessage2(hello: hsHello(2))
            hsExpect(.handshakeDecryptFailed, "byte \(i)") { () throws(USPError) in _ = try client.readMessage2(m2) }
        }
        // None of those failures changed the client: the honest server's message 2 still completes it.
        var server = ResponderHandshake(staticKey: serverStatic)
        _ = try server.readMessage1(m1)
        let (m2, serverResult) = try server.writeMessage2(hello: hsHello(2))
        guard case .finished(let clientResult) = try client.readMessage2(m2), let serverResult else {
            Issue.record("\(pattern) must finish after message 2")
            return
        }
        try hsExpectTransportWorks(clientResult, serverResult)
    }

    @Test("flipping any single byte of message 2 fails readMessage2, which leaves the state unchanged",
          arguments: HandshakeLayout.Pattern.allCases)
    func message2Flip(pattern: HandshakeLayout.Pattern) throws {
        let serverStatic = hsKeyPair(2)
        var client = try InitiatorHandshake(mode: clientMode(pattern, server: serverStatic))
        var server = ResponderHandshake(staticKey: serverStatic)
        _ = try server.readMessage1(try client.writeMessage1(hello: hsHello(1)))
        let (m2, serverResultIKNK) = try server.writeMessage2(hello: hsHello(2))
        let hashBefore = client.handshakeHash
        for i in 0..<m2.count {
            hsExpect(.handshakeDecryptFailed, "byte \(i)") { () throws(USPError) in _ = try client.readMessage2(hsFlipped(m2, at: i, mask: mask(i))) }
        }
        #expect(client.handshakeHash == hashBefore)
        switch try client.readMessage2(m2) {
        case .finished(let clientResult):
            #expect(pattern != .xx)
            let serverResult = try #require(serverResultIKNK)
            try hsExpectTransportWorks(clientResult, serverResult)
        case .needMessage3:
            #expect(pattern == .xx)
            let (m3, clientResult) = try client.writeMessage3(hello: hsHello(1))
            try hsExpectTransportWorks(clientResult, try server.readMessage3(m3))
        }
    }

    @Test("flipping any single byte of XX message 3 fails readMessage3, which leaves the state unchanged")
    func message3Flip() throws {
        let serverStatic = hsKeyPair(2), clientStatic = hsKeyPair(1)
        var client = try InitiatorHandshake(mode: .firstContact(clientStatic: clientStatic))
        var server = ResponderHandshake(staticKey: serverStatic)
        _ = try server.readMessage1(try client.writeMessage1(hello: hsHello(1)))
        _ = try client.readMessage2(try server.writeMessage2(hello: hsHello(2)).message)
        let (m3, clientResult) = try client.writeMessage3(hello: hsHello(1))
        for i in 0..<m3.count {
            hsExpect(.handshakeDecryptFailed, "byte \(i)") { () throws(USPError) in _ = try server.readMessage3(hsFlipped(m3, at: i, mask: mask(i))) }
        }
        let serverResult = try server.readMessage3(m3)
        #expect(serverResult.remoteStatic == clientStatic.publicKey)
        #expect(serverResult.handshakeHash == clientResult.handshakeHash)
        try hsExpectTransportWorks(clientResult, serverResult)
    }

    @Test("XX message 3 from another session (another client static) is refused")
    func message3FromAnotherSession() throws {
        let serverStatic = hsKeyPair(2)
        func start(_ seed: UInt64) throws -> (InitiatorHandshake, ResponderHandshake) {
            var client = try InitiatorHandshake(mode: .firstContact(clientStatic: hsKeyPair(seed)))
            var server = ResponderHandshake(staticKey: serverStatic)
            _ = try server.readMessage1(try client.writeMessage1(hello: Hello()))
            _ = try client.readMessage2(try server.writeMessage2(hello: Hello()).message)
            return (client, server)
        }
        var (clientA, serverA) = try start(10)
        var (clientB, _) = try start(11)
        let m3A = try clientA.writeMessage3(hello: Hello()).message
        let m3B = try clientB.writeMessage3(hello: Hello()).message
        hsExpect(.handshakeDecryptFailed) { () throws(USPError) in _ = try serverA.readMessage3(m3B) }
        _ = try serverA.readMessage3(m3A)
    }

    @Test("a client reading a message 2 from a different server, or another session, fails",
          arguments: HandshakeLayout.Pattern.allCases)
    func message2FromElsewhere(pattern: HandshakeLayout.Pattern) throws {
        let serverA = hsKeyPair(2), serverB = hsKeyPair(3)
        var client = try InitiatorHandshake(mode: clientMode(pattern, server: serverA))
        var a = ResponderHandshake(staticKey: serverA)
        _ = try a.readMessage1(try client.writeMessage1(hello: Hello()))
        let (goodM2, _) = try a.writeMessage2(hello: Hello())

        // Server B, talking to its own client of the same pattern.
        var otherClient = try InitiatorHandshake(mode: clientMode(pattern, server: serverB, client: hsKeyPair(4)))
        var b = ResponderHandshake(staticKey: serverB)
        _ = try b.readMessage1(try otherClient.writeMessage1(hello: Hello()))
        let (m2FromB, _) = try b.writeMessage2(hello: Hello())
        hsExpect(.handshakeDecryptFailed) { () throws(USPError) in _ = try client.readMessage2(m2FromB) }

        // Server A again, answering a different client's message 1.
        var thirdClient = try InitiatorHandshake(mode: clientMode(pattern, server: serverA, client: hsKeyPair(5)))
        var a2 = ResponderHandshake(staticKey: serverA)
        _ = try a2.readMessage1(try thirdClient.writeMessage1(hello: Hello()))
        let (m2OtherSession, _) = try a2.writeMessage2(hello: Hello())
        hsExpect(.handshakeDecryptFailed) { () throws(USPError) in _ = try client.readMessage2(m2OtherSession) }

        _ = try client.readMessage2(goodM2)
    }

    @Test("a client pinning the wrong server key is rejected: stealth refuses message 1, otherwise message 2 fails",
          arguments: [HandshakeLayout.Pattern.ik, .nk])
    func wrongPinnedKey(pattern: HandshakeLayout.Pattern) throws {
        let realServer = hsKeyPair(2), pinned = hsKeyPair(3)
        var client = try InitiatorHandshake(mode: clientMode(pattern, server: pinned))
        let m1 = try client.writeMessage1(hello: Hello())

        var stealth = ResponderHandshake(staticKey: realServer, allowFirstContact: false)
        hsExpect(.patternNotAllowed) { () throws(USPError) in _ = try stealth.readMessage1(m1) }

        var open = ResponderHandshake(staticKey: realServer)
        #expect(try open.readMessage1(m1).pattern == .xx)
        let (m2, _) = try open.writeMessage2(hello: Hello())
        hsExpect(.handshakeDecryptFailed) { () throws(USPError) in _ = try client.readMessage2(m2) }
    }

    @Test("an XX client can tell the server's static key, so a substituted server is visible (trust on first use)")
    func xxServerKeyVisible() throws {
        let run = try hsRunHandshake(.xx, serverStatic: hsKeyPair(3))
        #expect(run.client.remoteStatic == hsKeyPair(3).publicKey)
        #expect(run.client.remoteStatic != hsKeyPair(2).publicKey)
    }

    @Test("the hellos are bound into the handshake hash: different hellos give different hashes",
          arguments: HandshakeLayout.Pattern.allCases)
    func hellosBoundIntoHash(pattern: HandshakeLayout.Pattern) throws {
        let seedC: UInt64 = 40, seedS: UInt64 = 41
        let a = try hsRunHandshake(pattern, clientHello: hsHello(1), serverHello: hsHello(2),
                                   clientRandom: HSSeededRandom(seed: seedC), serverRandom: HSSeededRandom(seed: seedS))
        let b = try hsRunHandshake(pattern, clientHello: hsHello(1), serverHello: hsHello(3),
                                   clientRandom: HSSeededRandom(seed: seedC), serverRandom: HSSeededRandom(seed: seedS))
        let c = try hsRunHandshake(pattern, clientHello: hsHello(5), serverHello: hsHello(2),
                                   clientRandom: HSSeededRandom(seed: seedC), serverRandom: HSSeededRandom(seed: seedS))
        #expect(a.client.handshakeHash != b.client.handshakeHash, "server hello")
        #expect(a.client.handshakeHash != c.client.handshakeHash, "client hello")
    }
}
