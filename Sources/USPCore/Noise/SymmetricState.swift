import Crypto

/// Noise §5.2 SymmetricState for SHA256: chaining key `ck`, handshake hash `h`, and a CipherState.
public struct SymmetricState: Sendable {
    public static let hashLength = 32

    public private(set) var chainingKey: [UInt8]
    public private(set) var handshakeHash: [UInt8]
    public private(set) var cipherState = CipherState()

    /// InitializeSymmetric(protocol_name)
    public init(protocolName: String) {
        let name = Array(protocolName.utf8)
        if name.count <= Self.hashLength {
            handshakeHash = name + [UInt8](repeating: 0, count: Self.hashLength - name.count)
        } else {
            handshakeHash = Array(SHA256.hash(data: name))
        }
        chainingKey = handshakeHash
    }

    /// MixKey(input_key_material)
    public mutating func mixKey(_ inputKeyMaterial: [UInt8]) throws(NoiseError) {
        let out = Self.hkdf(chainingKey: chainingKey, input: inputKeyMaterial, outputs: 2)
        chainingKey = out[0]
        try cipherState.initializeKey(out[1])
    }

    /// MixHash(data)
    public mutating func mixHash(_ data: some Collection<UInt8>) {
        var hasher = SHA256()
        hasher.update(data: handshakeHash)
        hasher.update(data: Array(data))
        handshakeHash = Array(hasher.finalize())
    }

    /// MixKeyAndHash(input_key_material), used for psk tokens.
    public mutating func mixKeyAndHash(_ inputKeyMaterial: [UInt8]) throws(NoiseError) {
        let out = Self.hkdf(chainingKey: chainingKey, input: inputKeyMaterial, outputs: 3)
        chainingKey = out[0]
        mixHash(out[1])
        try cipherState.initializeKey(out[2])
    }

    /// GetHandshakeHash()
    public func getHandshakeHash() -> [UInt8] { handshakeHash }

    /// EncryptAndHash(plaintext)
    public mutating func encryptAndHash(_ plaintext: some Collection<UInt8>) throws(NoiseError) -> [UInt8] {
        let ciphertext = try cipherState.encryptWithAd(handshakeHash, plaintext)
        mixHash(ciphertext)
        return ciphertext
    }

    /// DecryptAndHash(ciphertext)
    public mutating func decryptAndHash(_ ciphertext: some Collection<UInt8>) throws(NoiseError) -> [UInt8] {
        let plaintext = try cipherState.decryptWithAd(handshakeHash, ciphertext)
        mixHash(ciphertext)
        return plaintext
    }

    /// Split(): the two transport CipherStates, initiator-to-responder first.
    public func split() throws(NoiseError) -> (CipherState, CipherState) {
        let out = Self.hkdf(chainingKey: chainingKey, input: [], outputs: 2)
        return (try CipherState(key: out[0]), try CipherState(key: out[1]))
    }

    /// HKDF(chaining_key, input_key_material, num_outputs) of §4.3, built on HMAC-SHA256.
    public static func hkdf(chainingKey: [UInt8], input: [UInt8], outputs: Int) -> [[UInt8]] {
        precondition(outputs == 2 || outputs == 3, "Noise HKDF yields two or three outputs")
        let tempKey = hmac(key: chainingKey, data: input)
        let out1 = hmac(key: tempKey, data: [0x01])
        let out2 = hmac(key: tempKey, data: out1 + [0x02])
        if outputs == 2 { return [out1, out2] }
        let out3 = hmac(key: tempKey, data: out2 + [0x03])
        return [out1, out2, out3]
    }

    static func hmac(key: [UInt8], data: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key)))
    }
}
