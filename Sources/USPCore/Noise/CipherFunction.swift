import CUSPCrypto

/// A Noise cipher function (Noise §12.3, §12.4): the AEAD a CipherState encrypts with.
///
/// Every USP handshake uses ChaChaPoly (the protocol names of docs/PROTOCOL.md §3.1). Records use
/// AESGCM instead when both hellos offer it (§4.2): with AES instructions and carry-less multiply it
/// is three to four times as fast as ChaChaPoly, without them it is slower and not constant-time.
public enum CipherFunction: UInt8, Sendable, Equatable, CustomStringConvertible {
    /// ChaCha20-Poly1305 (RFC 8439); nonce = 32 zero bits ‖ counter, little-endian.
    case chaChaPoly = 0
    /// AES-256-GCM (NIST SP 800-38D) with a 128-bit tag; nonce = 32 zero bits ‖ counter, big-endian.
    case aesGCM = 1

    /// Whether this CPU computes AES-GCM in hardware (decided once by the crypto library).
    public static let aesGCMHasHardware: Bool = usp_aes_hardware() == 1

    /// The C layer's cipher number (`USP_AEAD_CHACHA20_POLY1305`, `USP_AEAD_AES_256_GCM`): the raw value.
    var cValue: Int32 { Int32(rawValue) }

    /// The name in a Noise protocol name, and in logs.
    public var description: String {
        switch self {
        case .chaChaPoly: "ChaChaPoly"
        case .aesGCM: "AESGCM"
        }
    }
}
