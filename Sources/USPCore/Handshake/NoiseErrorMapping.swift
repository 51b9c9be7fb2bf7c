extension USPError {
    /// Maps a Noise-layer error to the USP code a peer or log sees, with where it happened.
    init(_ noise: NoiseError, during step: String) {
        switch noise {
        case .decryptFailed:
            self.init(.handshakeDecryptFailed, "\(step): AEAD tag did not verify")
        case .lowOrderPoint:
            self.init(.lowOrderPoint, "\(step): peer sent a low-order X25519 point (all-zero DH result)")
        case .nonceExhausted:
            self.init(.nonceExhausted, "\(step): nonce exhausted")
        case .messageTooShort:
            self.init(.handshakeFailed, "\(step): message too short")
        case .messageTooLong:
            self.init(.handshakeFailed, "\(step): message longer than 65535 bytes")
        case .invalidKey:
            self.init(.handshakeFailed, "\(step): key of the wrong length")
        case .unsupportedProtocol(let name):
            self.init(.handshakeFailed, "\(step): unsupported protocol \(name)")
        case .missingKey(let which):
            self.init(.handshakeFailed, "\(step): missing key \(which)")
        case .wrongTurn:
            self.init(.handshakeFailed, "\(step): not this side's turn")
        case .cryptoUnavailable:
            self.init(.internalError, "\(step): the cipher library failed")
        }
    }
}

/// Runs a Noise call and maps its error.
@inline(__always)
func noiseStep<T>(_ step: String, _ body: () throws(NoiseError) -> T) throws(USPError) -> T {
    do { return try body() } catch { throw USPError(error, during: step) }
}
