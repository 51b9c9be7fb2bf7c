import Foundation
import Testing
@testable import USPCore

/// Project Wycheproof X25519 vectors (shared/vectors/wycheproof/x25519_test.json) against `X25519.dh`,
/// and the low-order-point rejection inside a handshake.
@Suite("Wycheproof X25519")
struct WycheproofX25519Tests {
    struct File: Decodable {
        let numberOfTests: Int
        let testGroups: [Group]
    }

    struct Group: Decodable {
        let curve: String
        let tests: [Case]
    }

    struct Case: Decodable {
        let tcId: Int
        let comment: String
        let flags: [String]
        let `public`: String
        let `private`: String
        let shared: String
        let result: String
    }

    static let path = "vectors/wycheproof/x25519_test.json"

    static func load() throws -> File {
        try JSONDecoder().decode(File.self, from: SharedData.data(path))
    }

    /// A low-order public key from the file (flags LowOrderPublic and ZeroSharedSecret).
    static func lowOrderPoints() throws -> [[UInt8]] {
        try load().testGroups.flatMap(\.tests)
            .filter { $0.flags.contains("LowOrderPublic") && $0.flags.contains("ZeroSharedSecret") }
            .map { SharedData.bytes(hex: $0.public) }
    }

    @Test("X25519.dh matches every vector and rejects all-zero shared secrets")
    func vectors() throws {
        let file = try Self.load()
        var matched = 0, rejectedZero = 0, invalidRejected = 0, failed = 0
        var byResult: [String: Int] = [:]
        var total = 0
        for group in file.testGroups {
            #expect(group.curve == "curve25519")
            for t in group.tests {
                total += 1
                byResult[t.result, default: 0] += 1
                let priv = SharedData.bytes(hex: t.private)
                let pub = SharedData.bytes(hex: t.public)
                let expected = SharedData.bytes(hex: t.shared)
                let pair = try KeyPair(privateKey: priv)
                let outcome = Result { () throws(NoiseError) -> [UInt8] in try X25519.dh(pair, pub) }
                let zero = expected.count == 32 && expected.allSatisfy { $0 == 0 }

                if zero {
                    // RFC 7748 §6.1 check: a low-order peer key must never yield a usable (all-zero) secret.
                    if case .failure(.lowOrderPoint) = outcome {
                        rejectedZero += 1
                    } else {
                        failed += 1
                        Issue.record("tcId \(t.tcId) (\(t.comment), \(t.flags)): expected .lowOrderPoint, got \(outcome)")
                    }
                } else if t.result == "invalid" {
                    // Invalid inputs must be refused or at least not produce the listed value.
                    if case .success(let s) = outcome, s == expected {
                        failed += 1
                        Issue.record("tcId \(t.tcId) (\(t.comment)): invalid case accepted")
                    } else {
                        invalidRejected += 1
                    }
                } else {
                    // valid and acceptable (twist points, non-canonical keys, ...) must compute RFC 7748 exactly.
                    if case .success(let s) = outcome, s == expected {
                        matched += 1
                    } else {
                        failed += 1
                        Issue.record("tcId \(t.tcId) (\(t.result), \(t.comment), \(t.flags)): got \(outcome)")
                    }
                }
            }
        }
        let results = byResult.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print("Wycheproof X25519: \(total) tests (\(results)): \(matched) matched, "
              + "\(rejectedZero) zero-shared-secret rejected with lowOrderPoint, "
              + "\(invalidRejected) invalid rejected, \(failed) failed")
        #expect(total == file.numberOfTests)
        #expect(failed == 0)
        #expect(matched > 0)
        #expect(rejectedZero > 0)
        #expect(matched + rejectedZero + invalidRejected == total)
    }

    @Test("X25519.dh rejects the wrong key length")
    func wrongLength() throws {
        let pair = KeyPair.generate(using: SystemRandomSource())
        #expect(throws: NoiseError.invalidKey) { try X25519.dh(pair, [UInt8](repeating: 9, count: 31)) }
        #expect(throws: NoiseError.invalidKey) { try X25519.dh(pair, [UInt8](repeating: 9, count: 33)) }
        #expect(throws: NoiseError.invalidKey) { try KeyPair(privateKey: [UInt8](repeating: 1, count: 31)) }
    }

    // MARK: low-order ephemeral keys inside a handshake

    static let random = SystemRandomSource()

    static func keys() -> (initiator: KeyPair, responder: KeyPair) {
        (KeyPair.generate(using: random), KeyPair.generate(using: random))
    }

    /// IK and NK: message 1 carries `e, es`, so the responder's DH on a low-order `e` fails while reading.
    @Test("responder reading message 1 with a low-order e fails at the DH and keeps its state",
          arguments: ["IK", "NK"])
    func lowOrderMessage1(pattern: String) throws {
        let low = try Self.lowOrderPoints()
        #expect(!low.isEmpty)
        let proto = try NoiseProtocol(name: "Noise_\(pattern)_25519_ChaChaPoly_SHA256")
        let (si, sr) = Self.keys()
        for point in low {
            var responder = try HandshakeState(protocol: proto, role: .responder, localStatic: sr)
            let hashBefore = responder.handshakeHash
            // A plausible-length message 1: e, then (IK) an encrypted s, then the payload tag.
            let rest = pattern == "IK" ? 48 + 16 : 16
            let bad = point + Self.random.bytes(rest)
            #expect(throws: NoiseError.lowOrderPoint) { try responder.readMessage(bad) }
            #expect(responder.handshakeHash == hashBefore)
            #expect(responder.remoteEphemeral == nil)
            #expect(responder.remoteStatic == nil)
            #expect(!responder.isMyTurn && !responder.isFinished)

            // The same responder then completes a genuine handshake.
            var initiator = try HandshakeState(protocol: proto, role: .initiator,
                                               localStatic: pattern == "IK" ? si : nil,
                                               remoteStatic: sr.publicKey)
            let m1 = try initiator.writeMessage(payload: Array("hello".utf8))
            #expect(try responder.readMessage(m1.message).payload == Array("hello".utf8))
            let m2 = try responder.writeMessage()
            let r2 = try initiator.readMessage(m2.message)
            let ti = try #require(r2.transport), tr = try #require(m2.transport)
            #expect(ti.handshakeHash == tr.handshakeHash)
            if pattern == "IK" { #expect(tr.remoteStatic == si.publicKey) }
        }
    }

    /// XX message 1 is just `e` (no DH yet): reading it succeeds, and the responder's `ee` while writing
    /// message 2 fails, leaving the responder as it was.
    @Test("XX responder refuses to write message 2 to a low-order e and keeps its state")
    func lowOrderXXResponder() throws {
        let point = try #require(try Self.lowOrderPoints().first)
        let proto = try NoiseProtocol(name: "Noise_XX_25519_ChaChaPoly_SHA256")
        let (_, sr) = Self.keys()
        var responder = try HandshakeState(protocol: proto, role: .responder, localStatic: sr)
        _ = try responder.readMessage(point)
        #expect(responder.remoteEphemeral == point)
        let hashBefore = responder.handshakeHash
        #expect(throws: NoiseError.lowOrderPoint) { try responder.writeMessage() }
        #expect(responder.handshakeHash == hashBefore)
        #expect(responder.isMyTurn)
        #expect(responder.localEphemeralPublicKey == nil)
    }

    /// XX message 2 is `e, ee, s, es`: the initiator's `ee` on a low-order `e` fails while reading.
    @Test("XX initiator reading message 2 with a low-order e fails at the DH and keeps its state")
    func lowOrderXXInitiator() throws {
        let low = try Self.lowOrderPoints()
        let proto = try NoiseProtocol(name: "Noise_XX_25519_ChaChaPoly_SHA256")
        let (si, sr) = Self.keys()
        var initiator = try HandshakeState(protocol: proto, role: .initiator, localStatic: si)
        var responder = try HandshakeState(protocol: proto, role: .responder, localStatic: sr)
        let m1 = try initiator.writeMessage()
        _ = try responder.readMessage(m1.message)
        let hashBefore = initiator.handshakeHash
        for point in low {
            let bad = point + Self.random.bytes(48 + 16)
            #expect(throws: NoiseError.lowOrderPoint) { try initiator.readMessage(bad) }
            #expect(initiator.handshakeHash == hashBefore)
            #expect(initiator.remoteEphemeral == nil)
        }
        let m2 = try responder.writeMessage()
        _ = try initiator.readMessage(m2.message)
        #expect(initiator.remoteStatic == sr.publicKey)
        let m3 = try initiator.writeMessage()
        let r3 = try responder.readMessage(m3.message)
        let ti = try #require(m3.transport), tr = try #require(r3.transport)
        #expect(ti.handshakeHash == tr.handshakeHash)
        #expect(tr.remoteStatic == si.publicKey)
    }
}
