import Crypto
import USPCore

/// What one full handshake pair (client and server) needs in raw X25519 work, by the Noise pattern:
/// each side generates one ephemeral key, and does one DH per token (ee, es, se, ss) in its pattern.
struct RawCost {
    let keygens: Int
    let dhs: Int
    /// DHs the implementation performs beyond the pattern's need.
    let extraDHs: Int
    let note: String

    static func of(_ p: HandshakeLayout.Pattern) -> RawCost {
        switch p {
        // XX: client e; ee, es, se. Server e; ee, es, se. The server's trial decryption first computes
        // DH(s, re) for the IK/NK trials; the XX state then computes the same value again for its es.
        case .xx: return RawCost(keygens: 2, dhs: 6, extraDHs: 0, note: "trial es reused by XX (precomputed)")
        // IK: client e; es, ss, ee, se. Server e; es (shared by the trials), ss, ee, se.
        case .ik: return RawCost(keygens: 2, dhs: 8, extraDHs: 0, note: "trial es reused (precomputed)")
        // NK: client e; es, ee. Server e; es (shared; IK trial fails at its s before ss), ee.
        case .nk: return RawCost(keygens: 2, dhs: 4, extraDHs: 0, note: "IK trial fails before ss; es reused")
        }
    }
}

/// Handshake pairs with real random keys: static keys are made once per run (they are long-term),
/// every handshake makes fresh ephemerals from the system CSPRNG (the library's default source).
struct HandshakeBench {
    var clientStatic: KeyPair
    var serverStatic: KeyPair

    init() {
        clientStatic = KeyPair.generate(using: SystemRandomSource())
        serverStatic = KeyPair.generate(using: SystemRandomSource())
    }

    mutating func newStatics() {
        self = HandshakeBench()
    }

    /// One complete handshake, both sides, in memory. Returns a byte of the shared hash.
    func pair(_ pattern: HandshakeLayout.Pattern) throws -> UInt8 {
        let mode: InitiatorHandshake.Mode
        switch pattern {
        case .xx: mode = .firstContact(clientStatic: clientStatic)
        case .ik: mode = .knownServer(serverKey: serverStatic.publicKey, clientStatic: clientStatic)
        case .nk: mode = .anonymous(serverKey: serverStatic.publicKey)
        }
        var client = try InitiatorHandshake(mode: mode)
        var server = ResponderHandshake(staticKey: serverStatic)
        let m1 = try client.writeMessage1(hello: Hello())
        let seen = try server.readMessage1(m1)
        precondition(seen.pattern == pattern, "server detected \(seen.pattern), expected \(pattern)")
        let (m2, serverDone) = try server.writeMessage2(hello: Hello())
        switch try client.readMessage2(m2) {
        case .finished(let c):
            guard let s = serverDone else { preconditionFailure("server did not finish \(pattern)") }
            precondition(c.handshakeHash == s.handshakeHash, "handshake hashes differ")
            return c.handshakeHash[0]
        case .needMessage3:
            let (m3, c) = try client.writeMessage3(hello: Hello())
            let s = try server.readMessage3(m3)
            precondition(c.handshakeHash == s.handshakeHash, "handshake hashes differ")
            precondition(s.remoteStatic == clientStatic.publicKey, "server did not learn the client key")
            return c.handshakeHash[0]
        }
    }

    /// Nanoseconds for `n` handshake pairs.
    func run(_ pattern: HandshakeLayout.Pattern, count n: Int) throws -> UInt64 {
        var acc: UInt64 = 0
        let t0 = nowNanoseconds()
        for _ in 0..<n { acc &+= UInt64(try pair(pattern)) }
        let t1 = nowNanoseconds()
        consume(acc)
        return t1 - t0
    }
}

/// Raw swift-crypto X25519, the floor a handshake is compared with.
struct RawX25519 {
    let privateBytes: [[UInt8]]
    let privateKeys: [Curve25519.KeyAgreement.PrivateKey]
    let publicKeys: [Curve25519.KeyAgreement.PublicKey]

    init() {
        privateBytes = (0..<64).map { _ in randomBytes(32) }
        privateKeys = (0..<8).map { _ in Curve25519.KeyAgreement.PrivateKey() }
        publicKeys = (0..<8).map { _ in Curve25519.KeyAgreement.PrivateKey().publicKey }
    }

    /// `PrivateKey()`: random scalar and its public key (BoringSSL X25519_keypair).
    func keygenRandom(_ n: Int) -> UInt64 {
        var acc: UInt64 = 0
        let t0 = nowNanoseconds()
        for _ in 0..<n {
            let k = Curve25519.KeyAgreement.PrivateKey()
            acc &+= UInt64(k.publicKey.rawRepresentation.first!)
        }
        let t1 = nowNanoseconds()
        consume(acc)
        return t1 - t0
    }

    /// `PrivateKey(rawRepresentation:)` from 32 given bytes, which computes the public key
    /// (X25519_public_from_private). This is what `KeyPair.generate` does after drawing the bytes.
    func keygenFromBytes(_ n: Int) throws -> UInt64 {
        var acc: UInt64 = 0
        let t0 = nowNanoseconds()
        for i in 0..<n {
            let k = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: privateBytes[i & 63])
            acc &+= UInt64(k.publicKey.rawRepresentation.first!)
        }
        let t1 = nowNanoseconds()
        consume(acc)
        return t1 - t0
    }

    /// `sharedSecretFromKeyAgreement(with:)` on prepared keys.
    func dh(_ n: Int) throws -> UInt64 {
        var acc: UInt64 = 0
        let t0 = nowNanoseconds()
        for i in 0..<n {
            let s = try privateKeys[i & 7].sharedSecretFromKeyAgreement(with: publicKeys[(i >> 3) & 7])
            acc &+= UInt64(s.withUnsafeBytes { $0[0] })
        }
        let t1 = nowNanoseconds()
        consume(acc)
        return t1 - t0
    }
}
