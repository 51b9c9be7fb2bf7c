import Testing
@testable import USPCore

/// The records' cipher (docs/PROTOCOL.md §4.2): AESGCM when both hellos offer it, ChaChaPoly
/// otherwise; the handshake is ChaChaPoly whatever is offered.
@Suite struct RecordCipherTests {
    static func hello(_ salt: UInt32, aes: Bool) -> Hello {
        var h = hsHello(salt)
        h.recordCiphers = aes ? .aesGCM : []
        return h
    }

    @Test("both sides agree: AESGCM only when both hellos offer it, in every pattern",
          arguments: HandshakeLayout.Pattern.allCases)
    func negotiation(pattern: HandshakeLayout.Pattern) throws {
        for (clientAES, serverAES) in [(false, false), (true, false), (false, true), (true, true)] {
            let hs = try hsRunHandshake(pattern, clientHello: Self.hello(11, aes: clientAES), serverHello: Self.hello(22, aes: serverAES))
            let expected: CipherFunction = clientAES && serverAES ? .aesGCM : .chaChaPoly
            #expect(hs.client.recordCipher == expected, "\(pattern) client \(clientAES) server \(serverAES)")
            #expect(hs.server.recordCipher == expected, "\(pattern) client \(clientAES) server \(serverAES)")
            for t in [hs.client.transport, hs.server.transport] {
                #expect(t.send.function == expected && t.receive.function == expected)
            }
            // The keys work across: client → server and back.
            var c = hs.client.transport, s = hs.server.transport
            let up = try c.send.encryptWithAd([UInt8](), Array("up".utf8))
            #expect(try s.receive.decryptWithAd([UInt8](), up) == Array("up".utf8))
            let down = try s.send.encryptWithAd([UInt8](), Array("down".utf8))
            #expect(try c.receive.decryptWithAd([UInt8](), down) == Array("down".utf8))
        }
    }

    @Test("the handshake messages are the same whatever the hellos offer: only the records change cipher")
    func handshakeUnchanged() throws {
        // A deterministic handshake with and without the offer: message 1 differs only inside its
        // encrypted hello, so its length and the server's trial decryption are unchanged, and the
        // server reads both.
        for pattern in HandshakeLayout.Pattern.allCases {
            let hs = try hsRunHandshake(pattern, clientHello: Self.hello(1, aes: true), serverHello: Self.hello(2, aes: true))
            #expect(hs.message1.count == HandshakeLayout.message1Length)
            #expect(hs.message2.count == HandshakeLayout.message2Length)
            #expect(hs.server.peerHello.recordCiphers == .aesGCM)
            #expect(hs.client.peerHello.recordCiphers == .aesGCM)
        }
    }

    @Test("an AESGCM record does not open under ChaChaPoly with the same key, and the reverse")
    func ciphersDiffer() throws {
        let key = [UInt8](repeating: 7, count: 32)
        var aes = try CipherState(key: key, function: .aesGCM)
        var chacha = try CipherState(key: key, function: .chaChaPoly)
        let sealed = try aes.encryptWithAd([UInt8](), Array("hello".utf8))
        #expect(throws: NoiseError.self) { _ = try chacha.decryptWithAd([UInt8](), sealed) }
        var aes2 = try CipherState(key: key, function: .aesGCM)
        #expect(try aes2.decryptWithAd([UInt8](), sealed) == Array("hello".utf8))
        var chacha2 = try CipherState(key: key, function: .chaChaPoly)
        let sealed2 = try chacha2.encryptWithAd([UInt8](), Array("hello".utf8))
        var aes3 = try CipherState(key: key, function: .aesGCM)
        #expect(throws: NoiseError.self) { _ = try aes3.decryptWithAd([UInt8](), sealed2) }
    }

    /// The nonce encoding itself is checked byte for byte by the official AESGCM vectors
    /// (NoiseVectorTests, transport messages after Split); this checks that distinct counters give
    /// distinct ciphertexts and that Rekey() stays under AESGCM.
    @Test("AESGCM uses Noise's big-endian nonce: nonce 2^32+1 and 1 give different tags, rekey keeps the cipher")
    func nonceAndRekey() throws {
        let key = (0..<32).map { UInt8($0) }
        var a = try CipherState(key: key, function: .aesGCM)
        a.setNonce(1)
        let one = try a.encryptWithAd([UInt8](), [UInt8](repeating: 0, count: 16))
        var b = try CipherState(key: key, function: .aesGCM)
        b.setNonce(1 << 32 | 1)
        let other = try b.encryptWithAd([UInt8](), [UInt8](repeating: 0, count: 16))
        #expect(one != other)
        try a.rekey()
        #expect(a.function == .aesGCM)
        var c = try CipherState(key: key, function: .aesGCM)
        try c.rekey()
        c.setNonce(a.nonce)
        let x = try a.encryptWithAd([UInt8](), Array("after rekey".utf8))
        #expect(try c.decryptWithAd([UInt8](), x) == Array("after rekey".utf8))
    }

    @Test("records sealed after an AESGCM handshake open on the other side, across a rekey")
    func recordsAcrossRekey() throws {
        let hs = try hsRunHandshake(.ik, clientHello: Self.hello(3, aes: true), serverHello: Self.hello(4, aes: true))
        #expect(hs.client.recordCipher == .aesGCM)
        var sealer = RecordSealer(cipher: hs.client.transport.send, maxPlaintext: 65519, rekeyAfterBytes: 1 << 20)
        var opener = RecordOpener(cipher: hs.server.transport.receive, maxPlaintext: 65519, rekeyLimit: 1 << 32)
        for i in 0..<4 {
            let plaintext = (0..<(1000 + i * 7000)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) }
            let wire = try rtSeal(&sealer, plaintext)
            #expect(wire.count == plaintext.count + RecordLayout.overhead)
            #expect(try rtOpen(&opener, wire) == plaintext)
            if i == 1 {
                try sealer.rekey()
                try opener.rekey()
            }
        }
        // A record from a sealer that did not rekey no longer opens: the rekey changed the key.
        // The stale sealer uses the right nonce (record 4 = nonce 8) under the key before the rekey.
        var staleCipher = hs.client.transport.send
        staleCipher.setNonce(8)
        var stale = RecordSealer(cipher: staleCipher, maxPlaintext: 65519)
        let wire = try rtSeal(&stale, [UInt8](repeating: 1, count: 10))
        hsExpect(.recordTampered) { () throws(USPError) in try rtOpen(&opener, wire) }
    }

    @Test("a relay-free snapshot carries the records' cipher (version 2) and still reads version 1 as ChaChaPoly")
    func snapshotCipher() throws {
        var stream = StreamState(localID: 1, peerID: 1, phase: .open, sendCredit: 20_000, receiveCredit: 16_384)
        stream.buffered = 0
        let snap = DedicatedStreamSnapshot(
            serverSessionID: "s", cipher: .aesGCM,
            send: .init(key: [UInt8](repeating: 1, count: 32), nonce: 6, maxPlaintext: 65519, rekeyBytes: 1 << 30, bytesSinceRekey: 0, records: 3),
            receive: .init(key: [UInt8](repeating: 2, count: 32), nonce: 4, maxPlaintext: 65519, rekeyBytes: 1 << 32, bytesSinceRekey: 0, records: 2),
            padding: .none, pendingBodyLength: nil, limits: StreamLimits(maxStreams: 100, initialWindow: 16_384, maxControlFrames: 200),
            peerInitialWindow: 1 << 20, controlFramesSinceProgress: 0, lastLocalID: 1, highestPeerID: 1, stream: stream,
            unreadInput: [], undeliveredData: [], unwrittenOutput: [])
        let bytes = snap.encoded()
        #expect(bytes[4] == 2 && bytes[5] == 1)
        #expect(try DedicatedStreamSnapshot(encoded: bytes) == snap)
        var v1 = bytes
        v1[4] = 1
        v1.remove(at: 5)
        var asChaCha = snap
        asChaCha.cipher = .chaChaPoly
        #expect(try DedicatedStreamSnapshot(encoded: v1) == asChaCha)
        var bad = bytes
        bad[5] = 2
        hsExpect(.malformedMessage) { () throws(USPError) in _ = try DedicatedStreamSnapshot(encoded: bad) }
    }
}
