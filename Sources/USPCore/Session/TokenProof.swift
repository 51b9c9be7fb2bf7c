import Crypto

/// Channel-bound tokens (docs/PROTOCOL.md §6.4).
///
/// A token's secret is a 32-byte Ed25519 seed that only the client holds. The server keeps the
/// token's ID and public key, never the secret, so a leaked token table cannot be replayed. A
/// client never sends the secret itself: it presents `usp1p.<base64url(id ‖ signature)>`, where the
/// signature covers this connection's handshake hash `h`. A presentation captured on one
/// connection is therefore useless on any other.
public enum TokenProof {
    public static let secretPrefix = "usp1."
    public static let presentationPrefix = "usp1p."
    static let idContext = Array("USP token id v1\u{0}".utf8)
    static let proofContext = Array("USP token presentation v1\u{0}".utf8)

    /// A 16-byte token ID: SHA-256("USP token id v1\0" ‖ public key), first 16 bytes.
    public struct TokenID: Hashable, Sendable, CustomStringConvertible {
        public let bytes: [UInt8]
        public init?(bytes: [UInt8]) {
            guard bytes.count == 16 else { return nil }
            self.bytes = bytes
        }
        public init?(text: String) {
            guard let b = Base64URL.decode(text), b.count == 16 else { return nil }
            bytes = b
        }
        public var description: String { Base64URL.encode(bytes) }
    }

    /// What the server creates when it grants a token.
    public struct Issued: Sendable {
        /// `usp1.<base64url(seed)>`: sent once to the client, in the service reply, never stored.
        public let secret: String
        public let id: TokenID
        /// Stored by the server to check presentations.
        public let publicKey: [UInt8]
    }

    public static func issue(random: some RandomSource) -> Issued {
        let seed = random.bytes(32)
        // A 32-byte seed is always a valid Ed25519 private key.
        let key = try! Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        let pub = Array(key.publicKey.rawRepresentation)
        return Issued(secret: secretPrefix + Base64URL.encode(seed), id: tokenID(publicKey: pub), publicKey: pub)
    }

    public static func tokenID(publicKey: [UInt8]) -> TokenID {
        TokenID(bytes: Array(SHA256.hash(data: idContext + publicKey).prefix(16)))!
    }

    /// The ID of a token secret (client side, e.g. to name a token in a revocation list).
    public static func tokenID(secret: String) throws(USPError) -> TokenID {
        tokenID(publicKey: Array(try signingKey(secret).publicKey.rawRepresentation))
    }

    /// Client side: proves possession of `secret` on the connection whose handshake hash is `h`.
    public static func present(secret: String, handshakeHash h: [UInt8]) throws(USPError) -> String {
        let key = try signingKey(secret)
        let id = tokenID(publicKey: Array(key.publicKey.rawRepresentation))
        guard let signature = try? key.signature(for: proofContext + h) else {
            throw USPError(.internalError, "token: signing failed")
        }
        return presentationPrefix + Base64URL.encode(id.bytes + Array(signature))
    }

    /// A parsed presentation: which token, and the signature to check.
    public struct Presentation: Sendable {
        public let id: TokenID
        public let signature: [UInt8]

        /// Server side: true if the signature is by `publicKey` over `h`.
        public func verify(publicKey: [UInt8], handshakeHash h: [UInt8]) -> Bool {
            guard tokenID(publicKey: publicKey) == id,
                  let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else { return false }
            return key.isValidSignature(signature, for: proofContext + h)
        }
    }

    public static func parse(_ text: String) throws(USPError) -> Presentation {
        guard text.hasPrefix(presentationPrefix) else {
            throw USPError(.tokenInvalid, "token: presentation does not start with \(presentationPrefix)")
        }
        guard let raw = Base64URL.decode(text.dropFirst(presentationPrefix.count)), raw.count == 80 else {
            throw USPError(.tokenInvalid, "token: presentation is not base64url of 80 bytes")
        }
        return Presentation(id: TokenID(bytes: Array(raw[0..<16]))!, signature: Array(raw[16...]))
    }

    static func signingKey(_ secret: String) throws(USPError) -> Curve25519.Signing.PrivateKey {
        guard secret.hasPrefix(secretPrefix), let seed = Base64URL.decode(secret.dropFirst(secretPrefix.count)), seed.count == 32,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw USPError(.tokenInvalid, "token: secret is not usp1.<base64url of 32 bytes>")
        }
        return key
    }
}

/// Public-key authentication bound to the channel: an Ed25519 signature over
/// "USP auth v1\0" ‖ h. Used by the `publickey` method at menu index 0.
public enum AuthenticationProof {
    static let context = Array("USP auth v1\u{0}".utf8)

    public static func sign(handshakeHash h: [UInt8], with key: Curve25519.Signing.PrivateKey) throws(USPError) -> [UInt8] {
        guard let sig = try? key.signature(for: context + h) else { throw USPError(.internalError, "auth: signing failed") }
        return Array(sig)
    }

    public static func verify(signature: [UInt8], publicKey: [UInt8], handshakeHash h: [UInt8]) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else { return false }
        return key.isValidSignature(signature, for: context + h)
    }
}

/// SHA-256 as bytes.
public enum SHA256Digest {
    public static func of(_ data: some Collection<UInt8>) -> [UInt8] { Array(SHA256.hash(data: Array(data))) }
}
