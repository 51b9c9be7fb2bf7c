import USPCore

/// Deterministic randomness (SplitMix64): a harness makes a new one per input, so an input always
/// runs the same way and a crash reproduces from its file alone.
public final class FixedRandom: RandomSource, @unchecked Sendable {
    private var state: UInt64

    public init(seed: UInt64 = 0x5553_5046_555A_5A00) { state = seed }

    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var i = 0
        while i < buffer.count {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            for k in 0..<8 where i < buffer.count {
                buffer[i] = UInt8(truncatingIfNeeded: z >> (8 * k))
                i += 1
            }
        }
    }
}

/// Fixed keys, so every run of a target sees the same server.
public enum FuzzKeys {
    private static func key(_ fill: UInt8) -> KeyPair {
        try! KeyPair(privateKey: (0..<32).map { UInt8(truncatingIfNeeded: Int(fill) &+ $0 &* 7) })
    }

    /// The server's static key (the one the responder decrypts IK and NK under).
    public static let server = key(0x11)
    /// The client's static key (IK, XX).
    public static let client = key(0x22)
    /// The client's ephemeral key when a harness plays the client (with an Elligator 2
    /// representative, as every handshake ephemeral needs).
    public static let clientEphemeral = KeyPair.generateHidden(using: FixedRandom(seed: 0x33))
    /// The server's ephemeral key.
    public static let serverEphemeral = KeyPair.generateHidden(using: FixedRandom(seed: 0x44))

    /// The instant every session is driven at (2027-01-15).
    public static let now = Timestamp(seconds: 1_800_000_000)
}
