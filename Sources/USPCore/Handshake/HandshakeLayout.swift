/// Fixed sizes and names of the USP handshake (docs/PROTOCOL.md §3). Every handshake message
/// has a fixed length, so nothing on the wire is a cleartext length, type or version.
public enum HandshakeLayout {
    /// Bytes in message 1, whatever the pattern.
    public static let message1Length = 1024
    /// Bytes in message 2, whatever the pattern.
    public static let message2Length = 160
    /// Bytes in message 3 (XX only).
    public static let message3Length = 128

    /// Noise prologue: binds the major wire version. Everything negotiated travels in hellos,
    /// which Noise hashes into `h`, so a rewritten offer fails the next AEAD check.
    public static let prologue: [UInt8] = Array("USP/1".utf8)

    public static let xx = NoiseProtocol(pattern: .XX)
    public static let ik = NoiseProtocol(pattern: .IK)
    public static let nk = NoiseProtocol(pattern: .NK)

    /// Plaintext payload of message 1: IK 928, NK 976, XX 992 (random filler, never parsed).
    public static func message1PayloadLength(_ pattern: Pattern) -> Int {
        switch pattern {
        case .ik: return message1Length - 32 - 48 - 16
        case .nk: return message1Length - 32 - 16
        case .xx: return message1Length - 32
        }
    }

    /// Room for early frames after the hello in message 1 (IK 864, NK 912, XX 0).
    public static func earlyFrameCapacity(_ pattern: Pattern) -> Int {
        pattern == .xx ? 0 : message1PayloadLength(pattern) - Hello.length
    }

    /// Plaintext payload of message 2: the hello, padded so every pattern's message 2 is 160 bytes.
    public static func message2PayloadLength(_ pattern: Pattern) -> Int {
        switch pattern {
        case .xx: return message2Length - 32 - 48 - 16  // 64
        case .ik, .nk: return message2Length - 32 - 16  // 112
        }
    }

    /// The three USP handshake patterns.
    public enum Pattern: String, Hashable, Sendable, CaseIterable {
        /// First contact: the client does not know the server key (trust on first use).
        case xx = "XX"
        /// The client knows the server key and presents its static key (which can be its identity).
        case ik = "IK"
        /// The client knows the server key and stays anonymous.
        case nk = "NK"

        public var noiseProtocol: NoiseProtocol {
            switch self {
            case .xx: return HandshakeLayout.xx
            case .ik: return HandshakeLayout.ik
            case .nk: return HandshakeLayout.nk
            }
        }
    }
}
