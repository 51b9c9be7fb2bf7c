import Crypto
import CUSPCrypto

/// A Curve25519 key pair, as Noise's GENERATE_KEYPAIR returns (§4.1).
public struct KeyPair: Sendable {
    public let privateKey: [UInt8]
    public let publicKey: [UInt8]
    /// How the public key travels when it is an ephemeral key of a USP handshake: its Elligator 2
    /// representative (see `generateHidden`). Nil for keys made any other way.
    public private(set) var representative: [UInt8]?
    let agreementKey: Curve25519.KeyAgreement.PrivateKey

    /// Builds the pair from a 32-byte private key.
    public init(privateKey: [UInt8]) throws(NoiseError) {
        guard privateKey.count == 32 else { throw .invalidKey }
        do {
            agreementKey = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: privateKey)
        } catch {
            throw .invalidKey
        }
        self.privateKey = privateKey
        self.publicKey = Array(agreementKey.publicKey.rawRepresentation)
        self.representative = nil
    }

    func withRepresentative(_ representative: [UInt8]) -> KeyPair {
        var copy = self
        copy.representative = representative
        return copy
    }

    /// GENERATE_KEYPAIR(): 32 random bytes from the injected source.
    public static func generate(using random: some RandomSource) -> KeyPair {
        // 32 random bytes are always a valid X25519 private key.
        try! KeyPair(privateKey: random.bytes(32))
    }
}

/// DH(key_pair, public_key) for 25519 (§12.1), with the all-zero check swift-crypto does not make.
public enum X25519 {
    public static let dhLength = 32

    /// Returns the 32-byte shared secret, or throws `.lowOrderPoint` when the result is all zeros
    /// (which is what every low-order or small-subgroup public key yields), so a peer can never
    /// force a known shared secret.
    public static func dh(_ keyPair: KeyPair, _ publicKey: some Collection<UInt8>) throws(NoiseError) -> [UInt8] {
        guard publicKey.count == 32 else { throw .invalidKey }
        let shared: [UInt8]
        do {
            let peer = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: Array(publicKey))
            let secret = try keyPair.agreementKey.sharedSecretFromKeyAgreement(with: peer)
            shared = secret.withUnsafeBytes { Array($0) }
        } catch {
            // BoringSSL refuses an all-zero result itself on some paths; either way it is a low-order point.
            throw .lowOrderPoint
        }
        guard shared.count == 32 else { throw .lowOrderPoint }
        var acc: UInt8 = 0
        for b in shared { acc |= b }
        if acc == 0 { throw .lowOrderPoint }
        return shared
    }
}

/// Constant-time byte comparison for secrets (tokens, MACs, keys).
public enum ConstantTime {
    public static func equal(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        let x = Array(a), y = Array(b)
        guard x.count == y.count else { return false }
        if x.isEmpty { return true }
        return x.withUnsafeBytes { px in
            y.withUnsafeBytes { py in usp_ct_equal(px.baseAddress, py.baseAddress, x.count) == 1 }
        }
    }
}
