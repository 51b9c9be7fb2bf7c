/// A Noise handshake pattern (§7): pre-message tokens and message token lists.
public struct HandshakePattern: Hashable, Sendable {
    public enum Token: String, Hashable, Sendable {
        case e, s, ee, es, se, ss, psk
    }

    public let name: String
    /// Pre-message tokens the initiator's and responder's statics contribute (§7.1).
    public let initiatorPreMessage: [Token]
    public let responderPreMessage: [Token]
    /// Message token lists; even indices go initiator → responder.
    public let messages: [[Token]]

    public init(name: String, initiatorPreMessage: [Token] = [], responderPreMessage: [Token] = [], messages: [[Token]]) {
        self.name = name
        self.initiatorPreMessage = initiatorPreMessage
        self.responderPreMessage = responderPreMessage
        self.messages = messages
    }

    /// One-way patterns (§7.4) send every message from the initiator. psk modifiers keep a
    /// pattern one-way (Npsk0, Kpsk0, Xpsk1), so the base name before the modifiers decides.
    public var isOneWay: Bool { ["N", "K", "X"].contains(String(name.prefix { $0.isUppercase })) }

    public static let N = HandshakePattern(name: "N", responderPreMessage: [.s], messages: [[.e, .es]])
    public static let K = HandshakePattern(name: "K", initiatorPreMessage: [.s], responderPreMessage: [.s], messages: [[.e, .es, .ss]])
    public static let X = HandshakePattern(name: "X", responderPreMessage: [.s], messages: [[.e, .es, .s, .ss]])

    public static let NN = HandshakePattern(name: "NN", messages: [[.e], [.e, .ee]])
    public static let NK = HandshakePattern(name: "NK", responderPreMessage: [.s], messages: [[.e, .es], [.e, .ee]])
    public static let NX = HandshakePattern(name: "NX", messages: [[.e], [.e, .ee, .s, .es]])
    public static let KN = HandshakePattern(name: "KN", initiatorPreMessage: [.s], messages: [[.e], [.e, .ee, .se]])
    public static let KK = HandshakePattern(name: "KK", initiatorPreMessage: [.s], responderPreMessage: [.s], messages: [[.e, .es, .ss], [.e, .ee, .se]])
    public static let KX = HandshakePattern(name: "KX", initiatorPreMessage: [.s], messages: [[.e], [.e, .ee, .se, .s, .es]])
    public static let XN = HandshakePattern(name: "XN", messages: [[.e], [.e, .ee], [.s, .se]])
    public static let XK = HandshakePattern(name: "XK", responderPreMessage: [.s], messages: [[.e, .es], [.e, .ee], [.s, .se]])
    public static let XX = HandshakePattern(name: "XX", messages: [[.e], [.e, .ee, .s, .es], [.s, .se]])
    public static let IN = HandshakePattern(name: "IN", messages: [[.e, .s], [.e, .ee, .se]])
    public static let IK = HandshakePattern(name: "IK", responderPreMessage: [.s], messages: [[.e, .es, .s, .ss], [.e, .ee, .se]])
    public static let IX = HandshakePattern(name: "IX", messages: [[.e, .s], [.e, .ee, .se, .s, .es]])

    public static let basic: [HandshakePattern] = [N, K, X, NN, NK, NX, KN, KK, KX, XN, XK, XX, IN, IK, IX]

    /// Applies `pskN` modifiers (§9.2): psk0 goes first in message 1, pskN (N ≥ 1) last in message N.
    public func withPSK(_ positions: [Int]) -> HandshakePattern? {
        var msgs = messages
        for p in positions {
            if p == 0 {
                msgs[0].insert(.psk, at: 0)
            } else {
                guard p > 0, p <= msgs.count else { return nil }
                msgs[p - 1].append(.psk)
            }
        }
        let suffix = positions.map { "psk\($0)" }.joined(separator: "+")
        return HandshakePattern(name: name + suffix, initiatorPreMessage: initiatorPreMessage,
                                responderPreMessage: responderPreMessage, messages: msgs)
    }

    /// Parses the pattern part of a protocol name, e.g. "XX", "IKpsk2", "NNpsk0+psk2".
    public static func named(_ text: String) -> HandshakePattern? {
        let base = String(text.prefix { $0.isUppercase })
        guard let pattern = basic.first(where: { $0.name == base }) else { return nil }
        let rest = text.dropFirst(base.count)
        if rest.isEmpty { return pattern }
        var positions: [Int] = []
        for part in rest.split(separator: "+", omittingEmptySubsequences: false) {
            // Only canonical modifiers: "psk-1", "psk+1", "psk01" and stray "+" are refused.
            let digits = part.dropFirst(3)
            guard part.hasPrefix("psk"), let n = Int(digits), n >= 0, String(n) == digits else { return nil }
            positions.append(n)
        }
        return pattern.withPSK(positions)
    }

    public var usesPSK: Bool { messages.contains { $0.contains(.psk) } }
}

/// A full protocol name such as `Noise_XX_25519_ChaChaPoly_SHA256` (§8). The DH is 25519 and the
/// hash SHA256; the cipher is ChaChaPoly (every USP handshake) or AESGCM.
public struct NoiseProtocol: Hashable, Sendable {
    public static let suite = "25519_ChaChaPoly_SHA256"
    public let pattern: HandshakePattern
    public let cipher: CipherFunction
    public var name: String { "Noise_\(pattern.name)_25519_\(cipher)_SHA256" }

    public init(pattern: HandshakePattern, cipher: CipherFunction = .chaChaPoly) {
        self.pattern = pattern
        self.cipher = cipher
    }

    public init(name: String) throws(NoiseError) {
        let prefix = "Noise_"
        guard name.hasPrefix(prefix),
              let c = [CipherFunction.chaChaPoly, .aesGCM].first(where: { name.hasSuffix("_25519_\($0)_SHA256") }) else {
            throw .unsupportedProtocol(name)
        }
        let suffix = "_25519_\(c)_SHA256"
        let middle = String(name.dropFirst(prefix.count).dropLast(suffix.count))
        guard let p = HandshakePattern.named(middle) else { throw .unsupportedProtocol(name) }
        pattern = p
        cipher = c
    }
}
