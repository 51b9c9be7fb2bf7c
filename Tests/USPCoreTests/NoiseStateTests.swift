import Crypto
import Foundation
import Testing
@testable import USPCore

/// CipherState, SymmetricState and HandshakeState behaviour that the vectors do not reach:
/// error paths, roll-back, rekey, and channel binding.
@Suite("Noise state machines")
struct NoiseStateTests {
    static let random = SystemRandomSource()
    static let interactive = ["XX", "IK", "NK"]

    static func proto(_ pattern: String) throws -> NoiseProtocol {
        try NoiseProtocol(name: "Noise_\(pattern)_25519_ChaChaPoly_SHA256")
    }

    static func key() -> [UInt8] { random.bytes(32) }

    /// Fresh initiator and responder for XX, IK or NK with random static keys.
    static func pair(_ pattern: String, initiatorPrologue: [UInt8] = [], responderPrologue: [UInt8] = [],
                     si: KeyPair = .generate(using: random), sr: KeyPair = .generate(using: random)) throws
        -> (HandshakeState, HandshakeState)
    {
        let p = try proto(pattern)
        let initiator = try HandshakeState(
            protocol: p, role: .initiator, prologue: initiatorPrologue,
            localStatic: pattern == "NK" ? nil : si,
            remoteStatic: pattern == "XX" ? nil : sr.publicKey)
        let responder = try HandshakeState(protocol: p, role: .responder, prologue: responderPrologue, localStatic: sr)
        return (initiator, responder)
    }

    /// Runs the handshake to the end, alternating writer and reader; checks every payload arrives.
    static func handshake(_ a: inout HandshakeState, _ b: inout HandshakeState) throws
        -> (HandshakeState.Transport, HandshakeState.Transport)
    {
        var ta: HandshakeState.Transport?, tb: HandshakeState.Transport?
        var i = 0
        while !(a.isFinished && b.isFinished) {
            let payload = Array("handshake payload \(i)".utf8)
            if a.isMyTurn {
                let w = try a.writeMessage(payload: payload)
                let r = try b.readMessage(w.message)
                #expect(r.payload == payload)
                ta = w.transport ?? ta; tb = r.transport ?? tb
            } else {
                let w = try b.writeMessage(payload: payload)
                let r = try a.readMessage(w.message)
                #expect(r.payload == payload)
                tb = w.transport ?? tb; ta = r.transport ?? ta
            }
            i += 1
            try #require(i <= 3, "handshake did not finish in 3 messages")
        }
        return (try #require(ta), try #require(tb))
    }

    // MARK: CipherState

    @Test("nonce 2^64-1 is reserved: encryption at it throws, 2^64-2 works exactly once")
    func nonceExhaustion() throws {
        let k = Self.key()
        var c = try CipherState(key: k)
        c.setNonce(UInt64.max)
        #expect(throws: NoiseError.nonceExhausted) { try c.encryptWithAd([UInt8](), [1, 2, 3]) }
        #expect(c.nonce == UInt64.max)

        c.setNonce(UInt64.max - 1)
        let ct = try c.encryptWithAd([UInt8](), [1, 2, 3])
        #expect(c.nonce == UInt64.max)
        #expect(throws: NoiseError.nonceExhausted) { try c.encryptWithAd([UInt8](), [1, 2, 3]) }

        var d = try CipherState(key: k)
        d.setNonce(UInt64.max - 1)
        #expect(try d.decryptWithAd([UInt8](), ct) == [1, 2, 3])
        #expect(throws: NoiseError.nonceExhausted) { try d.decryptWithAd([UInt8](), ct) }

        // Encryption at 2^64-2 matches the independent AEAD with Noise's nonce encoding (4 zero bytes, LE counter).
        var nonce = [UInt8](repeating: 0, count: 4) + [UInt8](repeating: 0xff, count: 8)
        nonce[4] = 0xfe
        let box = try ChaChaPoly.seal([1, 2, 3], using: SymmetricKey(data: k), nonce: ChaChaPoly.Nonce(data: nonce))
        #expect(Array(box.ciphertext) + Array(box.tag) == ct)
    }

    @Test("a failed decryption does not advance the nonce")
    func decryptFailureKeepsNonce() throws {
        let k = Self.key()
        var sender = try CipherState(key: k), receiver = try CipherState(key: k)
        let ad = Array("ad".utf8)
        let good = try sender.encryptWithAd(ad, Array("first".utf8))
        for index in [0, good.count - 1] {  // a ciphertext byte, then a tag byte
            var bad = good
            bad[index] ^= 0x01
            #expect(throws: NoiseError.decryptFailed) { try receiver.decryptWithAd(ad, bad) }
            #expect(receiver.nonce == 0)
        }
        #expect(throws: NoiseError.decryptFailed) { try receiver.decryptWithAd(Array("AD".utf8), good) }
        #expect(throws: NoiseError.messageTooShort) { try receiver.decryptWithAd(ad, [UInt8](repeating: 0, count: 15)) }
        #expect(receiver.nonce == 0)
        #expect(try receiver.decryptWithAd(ad, good) == Array("first".utf8))
        #expect(receiver.nonce == 1)
        // The same ciphertext is not accepted twice (its nonce is gone).
        #expect(throws: NoiseError.decryptFailed) { try receiver.decryptWithAd(ad, good) }
        #expect(receiver.nonce == 1)
    }

    @Test("in-place seal/open agree with encryptWithAd/decryptWithAd; probe leaves the state alone")
    func inPlaceAndProbe() throws {
        let k = Self.key()
        var a = try CipherState(key: k), b = try CipherState(key: k)
        let plaintext = Array("in place".utf8)
        let expected = try a.encryptWithAd([UInt8](), plaintext)

        var buffer = plaintext + [UInt8](repeating: 0, count: CipherState.tagLength)
        try buffer.withUnsafeMutableBytes { buf in
            try b.seal(ad: UnsafeRawBufferPointer(start: nil, count: 0), buffer: buf, plaintextCount: plaintext.count)
        }
        #expect(buffer == expected)

        var r = try CipherState(key: k)
        #expect(expected.withUnsafeBytes { r.probe(nonce: 0, ciphertext: $0) })
        #expect(!expected.withUnsafeBytes { r.probe(nonce: 1, ciphertext: $0) })
        #expect(r.nonce == 0)
        let n = try buffer.withUnsafeMutableBytes { buf in
            try r.open(ad: UnsafeRawBufferPointer(start: nil, count: 0), buffer: buf)
        }
        #expect(n == plaintext.count)
        #expect(Array(buffer[0..<n]) == plaintext)
        #expect(r.nonce == 1)
    }

    /// CipherState is Sendable and its copies share one cipher context. Using copies from several
    /// threads at once (with an OpenSSL context, which keeps per-operation state) corrupted it.
    @Test("copies of a CipherState can be used from several threads at once")
    func concurrentCopies() throws {
        let k = Self.key()
        let plaintext = [UInt8](repeating: 0x5a, count: 256)
        let rounds = 4000
        var reference = try CipherState(key: k)
        let expected = try (0..<rounds).map { _ in try reference.encryptWithAd([UInt8](), plaintext) }
        let shared = try CipherState(key: k)
        let mismatches = NoiseTestCounter()
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            var sender = shared, receiver = shared
            for i in 0..<rounds {
                guard let ct = try? sender.encryptWithAd([UInt8](), plaintext), ct == expected[i],
                      let pt = try? receiver.decryptWithAd([UInt8](), ct), pt == plaintext
                else { mismatches.increment(); continue }
            }
        }
        #expect(mismatches.value == 0)
    }

    @Test("an empty CipherState passes data through (§5.1)")
    func emptyCipherState() throws {
        var c = CipherState()
        #expect(!c.hasKey)
        #expect(try c.encryptWithAd([1], [9, 8, 7]) == [9, 8, 7])
        #expect(try c.decryptWithAd([1], [9, 8, 7]) == [9, 8, 7])
        #expect(throws: NoiseError.invalidKey) { try CipherState(key: [UInt8](repeating: 0, count: 31)) }
    }

    @Test("rekey changes the key identically on both sides; the old key no longer decrypts")
    func rekey() throws {
        let k = Self.key()
        var a = try CipherState(key: k), b = try CipherState(key: k)
        let stale = try CipherState(key: k)
        _ = try b.decryptWithAd([UInt8](), a.encryptWithAd([UInt8](), [1]))

        try a.rekey()
        try b.rekey()
        #expect(a.nonce == 1 && b.nonce == 1)  // Rekey() leaves n alone

        let ct = try a.encryptWithAd([UInt8](), Array("after rekey".utf8))
        #expect(try b.decryptWithAd([UInt8](), ct) == Array("after rekey".utf8))
        var old = stale
        old.setNonce(1)
        #expect(throws: NoiseError.decryptFailed) { try old.decryptWithAd([UInt8](), ct) }

        // REKEY(k) = first 32 bytes of ENCRYPT(k, 2^64-1, zerolen, zeros) (§11.3), computed independently.
        let maxNonce = try ChaChaPoly.Nonce(data: [0, 0, 0, 0] + [UInt8](repeating: 0xff, count: 8))
        let box = try ChaChaPoly.seal([UInt8](repeating: 0, count: 32), using: SymmetricKey(data: k), nonce: maxNonce)
        var expected = try CipherState(key: Array(box.ciphertext.prefix(32)))
        expected.setNonce(1)
        var again = try CipherState(key: k)
        try again.rekey()
        again.setNonce(1)
        #expect(try expected.encryptWithAd([UInt8](), [5, 5]) == again.encryptWithAd([UInt8](), [5, 5]))
    }

    // MARK: HandshakeState

    @Test("transport round trip after a handshake with random keys", arguments: interactive)
    func transportRoundTrip(pattern: String) throws {
        let si = KeyPair.generate(using: Self.random), sr = KeyPair.generate(using: Self.random)
        var (i, r) = try Self.pair(pattern, si: si, sr: sr)
        var (ti, tr) = try Self.handshake(&i, &r)

        #expect(ti.handshakeHash == tr.handshakeHash)
        #expect(ti.handshakeHash == i.handshakeHash && tr.handshakeHash == r.handshakeHash)
        #expect(ti.handshakeHash.count == 32)
        #expect(ti.remoteStatic == sr.publicKey)
        #expect(tr.remoteStatic == (pattern == "NK" ? nil : si.publicKey))
        #expect(ti.send.hasKey && ti.receive.hasKey && tr.send.hasKey && tr.receive.hasKey)

        for n in 0..<5 {
            let up = Self.random.bytes(n * 100), down = Self.random.bytes(n * 37 + 1)
            let c1 = try ti.send.encryptWithAd([UInt8](), up)
            #expect(c1.count == up.count + CipherState.tagLength)
            #expect(try tr.receive.decryptWithAd([UInt8](), c1) == up)
            let c2 = try tr.send.encryptWithAd([UInt8](), down)
            #expect(try ti.receive.decryptWithAd([UInt8](), c2) == down)
            // Directions use different keys: a message cannot be reflected back to its sender.
            var reflect = ti.receive
            #expect(throws: NoiseError.decryptFailed) { try reflect.decryptWithAd([UInt8](), c1) }
        }
        #expect(ti.send.nonce == 5 && tr.receive.nonce == 5 && tr.send.nonce == 5 && ti.receive.nonce == 5)
    }

    @Test("channel binding: two handshakes between the same peers have different hashes", arguments: interactive)
    func channelBinding(pattern: String) throws {
        let si = KeyPair.generate(using: Self.random), sr = KeyPair.generate(using: Self.random)
        var (i1, r1) = try Self.pair(pattern, si: si, sr: sr)
        var (i2, r2) = try Self.pair(pattern, si: si, sr: sr)
        let (a, b) = try Self.handshake(&i1, &r1)
        let (c, d) = try Self.handshake(&i2, &r2)
        #expect(a.handshakeHash == b.handshakeHash)
        #expect(c.handshakeHash == d.handshakeHash)
        #expect(a.handshakeHash != c.handshakeHash)
        // Transport keys differ too: the first session cannot read the second.
        var second = c.send, firstReceiver = b.receive
        let ct = try second.encryptWithAd([UInt8](), [1, 2, 3])
        #expect(throws: NoiseError.decryptFailed) { try firstReceiver.decryptWithAd([UInt8](), ct) }
    }

    @Test("a tampered handshake message leaves the reader unchanged; the genuine one then succeeds",
          arguments: interactive)
    func tamperedHandshakeMessage(pattern: String) throws {
        var (i, r) = try Self.pair(pattern)
        // Message 1 (initiator → responder). In XX it has no key yet, so only the IK/NK tag can catch tampering.
        let m1 = try i.writeMessage(payload: Array("one".utf8))
        if pattern != "XX" {
            let before = r.handshakeHash
            for index in [40, m1.message.count - 1] {
                var bad = m1.message
                bad[index] ^= 0x80
                #expect(throws: NoiseError.decryptFailed) { try r.readMessage(bad) }
                #expect(r.handshakeHash == before)
                #expect(r.remoteEphemeral == nil && r.remoteStatic == nil)
            }
            #expect(throws: NoiseError.messageTooShort) { try r.readMessage(m1.message.prefix(m1.message.count - 1 - 16)) }
            #expect(throws: NoiseError.messageTooShort) { try r.readMessage(m1.message.prefix(31)) }
            #expect(r.handshakeHash == before)
        }
        _ = try r.readMessage(m1.message)

        // Message 2 (responder → initiator): flip bits in the responder's e, in the encrypted part, and in the tag.
        let m2 = try r.writeMessage(payload: Array("two".utf8))
        let before = i.handshakeHash
        for index in [0, 32, m2.message.count - 1] {
            var bad = m2.message
            bad[index] ^= 0x01
            #expect(throws: NoiseError.decryptFailed) { try i.readMessage(bad) }
            #expect(i.handshakeHash == before)
            #expect(i.remoteEphemeral == nil)
            #expect(!i.isMyTurn)
        }
        var extended = m2.message
        extended.append(0)
        #expect(throws: NoiseError.decryptFailed) { try i.readMessage(extended) }
        #expect(i.handshakeHash == before)

        let r2 = try i.readMessage(m2.message)
        #expect(r2.payload == Array("two".utf8))
        var ti: HandshakeState.Transport, tr: HandshakeState.Transport
        if pattern == "XX" {
            let m3 = try i.writeMessage()
            var bad = m3.message
            bad[10] ^= 0x01
            #expect(throws: NoiseError.decryptFailed) { try r.readMessage(bad) }
            #expect(!r.isFinished)
            let r3 = try r.readMessage(m3.message)
            ti = try #require(m3.transport); tr = try #require(r3.transport)
        } else {
            ti = try #require(r2.transport); tr = try #require(m2.transport)
        }
        #expect(ti.handshakeHash == tr.handshakeHash)
        let ct = try ti.send.encryptWithAd([UInt8](), [42])
        #expect(try tr.receive.decryptWithAd([UInt8](), ct) == [42])
    }

    @Test("wrongTurn: writing out of turn, reading out of turn, and anything after the end")
    func wrongTurn() throws {
        var (i, r) = try Self.pair("XX")
        #expect(i.isMyTurn && !r.isMyTurn)
        #expect(throws: NoiseError.wrongTurn) { try r.writeMessage() }
        #expect(throws: NoiseError.wrongTurn) { try i.readMessage([UInt8](repeating: 0, count: 32)) }
        let m1 = try i.writeMessage()
        #expect(throws: NoiseError.wrongTurn) { try i.writeMessage() }
        _ = try r.readMessage(m1.message)
        #expect(throws: NoiseError.wrongTurn) { try r.readMessage(m1.message) }
        _ = try Self.handshake(&i, &r)
        #expect(i.isFinished && r.isFinished && !i.isMyTurn && !r.isMyTurn)
        for var s in [i, r] {
            #expect(throws: NoiseError.wrongTurn) { try s.writeMessage() }
            #expect(throws: NoiseError.wrongTurn) { try s.readMessage([UInt8](repeating: 0, count: 64)) }
        }
    }

    @Test("missing keys are refused up front with .missingKey")
    func missingKeys() throws {
        let s = KeyPair.generate(using: Self.random)
        let ik = try Self.proto("IK"), nk = try Self.proto("NK"), xx = try Self.proto("XX"), kk = try Self.proto("KK")
        // IK initiator needs the responder's static (pre-message) and its own static (sent in message 1).
        #expect(throws: NoiseError.missingKey("rs")) { try HandshakeState(protocol: ik, role: .initiator, localStatic: s) }
        #expect(throws: NoiseError.missingKey("s")) {
            try HandshakeState(protocol: ik, role: .initiator, remoteStatic: s.publicKey)
        }
        #expect(throws: NoiseError.missingKey("s")) { try HandshakeState(protocol: ik, role: .responder) }
        #expect(throws: NoiseError.missingKey("rs")) { try HandshakeState(protocol: nk, role: .initiator) }
        #expect(throws: NoiseError.missingKey("s")) { try HandshakeState(protocol: nk, role: .responder) }
        #expect(throws: NoiseError.missingKey("s")) { try HandshakeState(protocol: xx, role: .initiator) }
        #expect(throws: NoiseError.missingKey("s")) { try HandshakeState(protocol: xx, role: .responder) }
        #expect(throws: NoiseError.missingKey("rs")) {
            try HandshakeState(protocol: kk, role: .responder, localStatic: s)
        }
        // psk patterns need exactly the right number of 32-byte psks.
        let xxpsk3 = try NoiseProtocol(name: "Noise_XXpsk3_25519_ChaChaPoly_SHA256")
        #expect(throws: NoiseError.missingKey("psk")) { try HandshakeState(protocol: xxpsk3, role: .initiator, localStatic: s) }
        #expect(throws: NoiseError.missingKey("psk")) {
            try HandshakeState(protocol: xxpsk3, role: .initiator, localStatic: s, psks: [Self.random.bytes(31)])
        }
        #expect(throws: NoiseError.missingKey("psk")) {
            try HandshakeState(protocol: xxpsk3, role: .initiator, localStatic: s, psks: [Self.key(), Self.key()])
        }
        // The valid variants are accepted.
        _ = try HandshakeState(protocol: ik, role: .initiator, localStatic: s, remoteStatic: s.publicKey)
        _ = try HandshakeState(protocol: nk, role: .initiator, remoteStatic: s.publicKey)
        _ = try HandshakeState(protocol: xxpsk3, role: .initiator, localStatic: s, psks: [Self.key()])
    }

    @Test("a prologue mismatch makes the handshake fail", arguments: interactive)
    func prologueMismatch(pattern: String) throws {
        var (i, r) = try Self.pair(pattern, initiatorPrologue: Array("USP/1 a".utf8),
                                   responderPrologue: Array("USP/1 b".utf8))
        #expect(throws: NoiseError.decryptFailed) { try Self.handshake(&i, &r) }
        #expect(!(i.isFinished && r.isFinished))
        // With equal prologues the same setup succeeds.
        var (i2, r2) = try Self.pair(pattern, initiatorPrologue: Array("USP/1 a".utf8),
                                     responderPrologue: Array("USP/1 a".utf8))
        let (a, b) = try Self.handshake(&i2, &r2)
        #expect(a.handshakeHash == b.handshakeHash)
    }

    @Test("a psk mismatch makes the handshake fail")
    func pskMismatch() throws {
        let p = try NoiseProtocol(name: "Noise_NNpsk0_25519_ChaChaPoly_SHA256")
        var i = try HandshakeState(protocol: p, role: .initiator, psks: [Self.key()])
        var r = try HandshakeState(protocol: p, role: .responder, psks: [Self.key()])
        #expect(throws: NoiseError.decryptFailed) { try Self.handshake(&i, &r) }
    }

    @Test("one-way patterns, with or without psk modifiers, give the responder no sending key (§7.4)")
    func oneWay() throws {
        for name in ["N", "K", "X", "Npsk0", "Kpsk0", "Xpsk1"] {
            let pattern = try #require(HandshakePattern.named(name))
            #expect(pattern.isOneWay, "\(name)")
        }
        for name in ["NN", "NK", "XX", "IK", "NNpsk0", "XXpsk3", "KKpsk0+psk2"] {
            let pattern = try #require(HandshakePattern.named(name))
            #expect(!pattern.isOneWay, "\(name)")
        }
        let si = KeyPair.generate(using: Self.random), sr = KeyPair.generate(using: Self.random)
        let p = try NoiseProtocol(name: "Noise_Kpsk0_25519_ChaChaPoly_SHA256")
        let psk = Self.key()
        var i = try HandshakeState(protocol: p, role: .initiator, localStatic: si, remoteStatic: sr.publicKey, psks: [psk])
        var r = try HandshakeState(protocol: p, role: .responder, localStatic: sr, remoteStatic: si.publicKey, psks: [psk])
        let w = try i.writeMessage(payload: [1])
        let rd = try r.readMessage(w.message)
        var ti = try #require(w.transport), tr = try #require(rd.transport)
        #expect(ti.send.hasKey && tr.receive.hasKey)
        #expect(!ti.receive.hasKey && !tr.send.hasKey)
        #expect(try tr.receive.decryptWithAd([UInt8](), ti.send.encryptWithAd([UInt8](), [7])) == [7])
    }

    @Test("protocol names: the suite and the pattern are checked")
    func protocolNames() throws {
        for bad in ["Noise_XX_25519_ChaChaPoly_BLAKE2s", "Noise_XX_448_ChaChaPoly_SHA256", "Noise_XX1_25519_ChaChaPoly_SHA256",
                    "Noise_ZZ_25519_ChaChaPoly_SHA256", "Noise_XXpsk_25519_ChaChaPoly_SHA256", "Noise_XXpsk9_25519_ChaChaPoly_SHA256",
                    "XX_25519_ChaChaPoly_SHA256",
                    // Malformed modifiers: a negative position used to trap (index out of range) instead of throwing,
                    // and signed or zero-padded numbers or stray "+" were accepted under a different canonical name.
                    "Noise_XXpsk-1_25519_ChaChaPoly_SHA256", "Noise_NNpsk-2_25519_ChaChaPoly_SHA256",
                    "Noise_XXpsk+1_25519_ChaChaPoly_SHA256", "Noise_XXpsk01_25519_ChaChaPoly_SHA256",
                    "Noise_XX+psk1_25519_ChaChaPoly_SHA256", "Noise_XXpsk1+_25519_ChaChaPoly_SHA256"] {
            #expect(throws: NoiseError.unsupportedProtocol(bad)) { try NoiseProtocol(name: bad) }
        }
        #expect(HandshakePattern.XX.withPSK([-1]) == nil)
        #expect(HandshakePattern.XX.withPSK([4]) == nil)
        let p = try NoiseProtocol(name: "Noise_XXpsk0+psk3_25519_ChaChaPoly_SHA256")
        #expect(p.name == "Noise_XXpsk0+psk3_25519_ChaChaPoly_SHA256")
        #expect(p.pattern.messages.first?.first == .psk && p.pattern.messages.last?.last == .psk)
    }

    @Test("ConstantTime.equal truth table")
    func constantTimeEqual() {
        let a: [UInt8] = [1, 2, 3, 4]
        #expect(ConstantTime.equal(a, a))
        #expect(ConstantTime.equal(a, [1, 2, 3, 4][...]))
        #expect(ConstantTime.equal([UInt8](), [UInt8]()))
        #expect(!ConstantTime.equal(a, [0, 2, 3, 4]))
        #expect(!ConstantTime.equal(a, [1, 2, 3, 5]))
        #expect(!ConstantTime.equal(a, [1, 2, 3]))
        #expect(!ConstantTime.equal(a, [1, 2, 3, 4, 0]))
        #expect(!ConstantTime.equal([UInt8](), [0]))
        #expect(!ConstantTime.equal([0], [UInt8]()))
        let big = Self.random.bytes(1000)
        var other = big
        other[999] ^= 0x80
        #expect(ConstantTime.equal(big, big) && !ConstantTime.equal(big, other))
    }
}

/// A thread-safe counter for the concurrency test.
final class NoiseTestCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
