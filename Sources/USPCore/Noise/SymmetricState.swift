import Crypto
import CUSPCrypto

/// Noise §5.2 SymmetricState for SHA256: chaining key `ck`, handshake hash `h`, and a CipherState.
public struct SymmetricState: Sendable {
    public static let hashLength = 32

    public private(set) var chainingKey: [UInt8]
    public private(set) var handshakeHash: [UInt8]
    public private(set) var cipherState: CipherState

    /// InitializeSymmetric(protocol_name), with the cipher function the name ends with.
    public init(protocolName: String, cipher: CipherFunction = .chaChaPoly) {
        cipherState = CipherState(function: cipher)
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
        return (try CipherState(key: out[0], function: cipherState.function), try CipherState(key: out[1], function: cipherState.function))
    }

    /// HKDF(chaining_key, input_key_material, num_outputs) of §4.3, built on HMAC-SHA256.
    public static func hkdf(chainingKey: [UInt8], input: [UInt8], outputs: Int) -> [[UInt8]] {
        precondition(outputs == 2 || outputs == 3, "Noise HKDF yields two or three outputs")
        let tempKey = hmac(key: chainingKey, data: input)
        // The two or three HMACs under temp_key share its padded-key hash states.
        let mac = HMACSHA256(key: tempKey)
        let out1 = mac.authenticationCode([0x01])
        let out2 = mac.authenticationCode(out1 + [0x02])
        if outputs == 2 { return [out1, out2] }
        let out3 = mac.authenticationCode(out2 + [0x03])
        return [out1, out2, out3]
    }

    static func hmac(key: [UInt8], data: [UInt8]) -> [UInt8] {
        HMACSHA256(key: key).authenticationCode(data)
    }
}

/// HMAC-SHA256 (RFC 2104) over swift-crypto's `SHA256`; the same output as `HMAC<SHA256>`.
///
/// It keeps the hash states after absorbing the padded key, so HKDF's MACs under one key absorb it
/// once, and it skips the generic `HMAC<SHA256>`'s `SymmetricKey`, `DataProtocol` and metadata work:
/// in the handshake profile that HMAC cost about 1.8 µs a call and HKDF about a sixth of a handshake.
struct HMACSHA256 {
    static let blockLength = 64
    private var inner = SHA256()
    private var outer = SHA256()

    init(key: [UInt8]) {
        withUnsafeTemporaryAllocation(byteCount: Self.blockLength, alignment: 8) { block in
            block.initializeMemory(as: UInt8.self, repeating: 0)
            if key.count > Self.blockLength {
                SHA256.hash(data: key).withUnsafeBytes { block.copyMemory(from: $0) }
            } else {
                key.withUnsafeBytes { block.copyMemory(from: $0) }
            }
            for i in 0..<Self.blockLength { block[i] ^= 0x36 }
            inner.update(bufferPointer: UnsafeRawBufferPointer(block))
            for i in 0..<Self.blockLength { block[i] ^= 0x36 ^ 0x5c }
            outer.update(bufferPointer: UnsafeRawBufferPointer(block))
            usp_secure_zero(block.baseAddress, block.count)
        }
    }

    func authenticationCode(_ data: [UInt8]) -> [UInt8] {
        var innerHash = inner
        data.withUnsafeBytes { innerHash.update(bufferPointer: $0) }
        var outerHash = outer
        innerHash.finalize().withUnsafeBytes { outerHash.update(bufferPointer: $0) }
        return outerHash.finalize().withUnsafeBytes { Array($0) }
    }
}
