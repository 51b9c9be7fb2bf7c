/// Errors raised by the Noise layer (spec rev 34). Higher layers map them to `USPError` codes.
public enum NoiseError: Error, Hashable, Sendable {
    /// An AEAD tag did not verify (§5.1 DecryptWithAd).
    case decryptFailed
    /// The nonce reached 2^64-1, which is reserved (§5.1).
    case nonceExhausted
    /// A DH result was all zeros: the peer sent a low-order point (§12.1 and RFC 7748 §6.1).
    case lowOrderPoint
    /// A message was shorter than its pattern requires.
    case messageTooShort
    /// A message or payload exceeds 65535 bytes (§3).
    case messageTooLong
    /// A key of the wrong length was supplied.
    case invalidKey
    /// The protocol name is not one this implementation supports.
    case unsupportedProtocol(String)
    /// A key the pattern needs (s, rs, psk) was not supplied.
    case missingKey(String)
    /// The handshake already finished, or it is the other party's turn.
    case wrongTurn
    /// The cipher could not be set up.
    case cryptoUnavailable
}
