import Foundation
import Testing
@testable import USPCore

/// Replays the cacophony and snow Noise test vectors (shared/vectors/noise, format in SOURCE.md)
/// for every 25519_ChaChaPoly_SHA256 and 25519_AESGCM_SHA256 protocol this implementation accepts
/// (the handshake is always ChaChaPoly; AESGCM is what a session's records may negotiate, and its
/// vectors check the cipher, its big-endian nonce and the transport messages after Split).
@Suite("Noise test vectors")
struct NoiseVectorTests {
    struct VectorFile: Decodable {
        let vectors: [Vector]
    }

    struct Vector: Decodable {
        struct Message: Decodable {
            let payload: String
            let ciphertext: String
        }

        let protocol_name: String
        let init_prologue: String
        let init_psks: [String]?
        let init_static: String?
        let init_ephemeral: String
        let init_remote_static: String?
        let resp_prologue: String
        let resp_psks: [String]?
        let resp_static: String?
        let resp_ephemeral: String?
        let resp_remote_static: String?
        let handshake_hash: String?
        let messages: [Message]
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    static let suffixes = ["_25519_ChaChaPoly_SHA256", "_25519_AESGCM_SHA256"]
    static let files = ["cacophony", "snow"]

    struct Tally {
        var passed = 0, failed = 0, skipped = 0
        var passedNames: Set<String> = []
    }

    @Test("every supported 25519_ChaChaPoly_SHA256 and 25519_AESGCM_SHA256 vector in cacophony.txt and snow.txt")
    func replayVectors() throws {
        var tallies: [String: Tally] = [:]
        for file in Self.files {
            let data = try SharedData.data("vectors/noise/\(file).txt")
            let vectors = try JSONDecoder().decode(VectorFile.self, from: data).vectors
            var tally = Tally()
            for vector in vectors {
                guard let suffix = Self.suffixes.first(where: { vector.protocol_name.hasSuffix($0) }) else { continue }
                let proto: NoiseProtocol
                do {
                    proto = try NoiseProtocol(name: vector.protocol_name)
                } catch {
                    // Deferred patterns (XX1, I1K, ...) are not implemented; they must be the only ones refused.
                    let middle = vector.protocol_name.dropFirst("Noise_".count).dropLast(suffix.count)
                    let deferred = middle.prefix { $0 != "p" }.contains { $0.isNumber }
                    #expect(deferred, "\(file): \(vector.protocol_name) refused but it is not a deferred pattern")
                    tally.skipped += 1
                    continue
                }
                do {
                    try Self.replay(vector, proto)
                    tally.passed += 1
                    tally.passedNames.insert(proto.pattern.name + suffix)
                } catch {
                    tally.failed += 1
                    Issue.record("\(file): \(vector.protocol_name): \(error)")
                }
            }
            tallies[file] = tally
        }

        let c = tallies["cacophony", default: Tally()], s = tallies["snow", default: Tally()]
        print("Noise vectors: \(c.passed + s.passed) passed, \(c.failed + s.failed) failed, "
              + "\(c.skipped + s.skipped) skipped (cacophony \(c.passed), snow \(s.passed))")
        #expect(c.failed + s.failed == 0)
        for (file, tally) in [("cacophony", c), ("snow", s)] {
            for suffix in Self.suffixes {
                for name in ["XX", "IK", "NK", "NN", "N", "X", "K"] {
                    #expect(tally.passedNames.contains(name + suffix), "\(file): no Noise_\(name)\(suffix) vector passed")
                }
            }
            #expect(tally.passedNames.contains { $0.contains("psk") }, "\(file): no psk vector passed")
        }
    }

    /// Runs initiator and responder side by side, checking every message byte for byte.
    static func replay(_ v: Vector, _ proto: NoiseProtocol) throws {
        func key(_ hex: String?) throws -> KeyPair? {
            try hex.map { try KeyPair(privateKey: SharedData.bytes(hex: $0)) }
        }
        func psks(_ list: [String]?) -> [[UInt8]] {
            proto.pattern.usesPSK ? (list ?? []).map { SharedData.bytes(hex: $0) } : []
        }
        var initiator = try HandshakeState(
            protocol: proto, role: .initiator, prologue: SharedData.bytes(hex: v.init_prologue),
            localStatic: key(v.init_static), localEphemeral: key(v.init_ephemeral),
            remoteStatic: v.init_remote_static.map { SharedData.bytes(hex: $0) },
            psks: psks(v.init_psks), random: NoVectorRandomness())
        var responder = try HandshakeState(
            protocol: proto, role: .responder, prologue: SharedData.bytes(hex: v.resp_prologue),
            localStatic: key(v.resp_static), localEphemeral: key(v.resp_ephemeral),
            remoteStatic: v.resp_remote_static.map { SharedData.bytes(hex: $0) },
            psks: psks(v.resp_psks), random: NoVectorRandomness())

        let pattern = proto.pattern
        let oneWay = ["N", "K", "X"].contains(String(pattern.name.prefix { $0.isUppercase }))
        guard v.messages.count >= pattern.messages.count else {
            throw Failure("vector has \(v.messages.count) messages, the pattern needs \(pattern.messages.count)")
        }

        var initiatorTransport: HandshakeState.Transport?
        var responderTransport: HandshakeState.Transport?
        for (i, m) in v.messages.enumerated() {
            let fromInitiator = oneWay || i % 2 == 0
            let payload = SharedData.bytes(hex: m.payload)
            let expected = SharedData.bytes(hex: m.ciphertext)
            if i < pattern.messages.count {
                // Handshake message.
                let written: (message: [UInt8], transport: HandshakeState.Transport?)
                let read: (payload: [UInt8], transport: HandshakeState.Transport?)
                if fromInitiator {
                    written = try initiator.writeMessage(payload: payload)
                    guard written.message == expected else {
                        throw Failure("handshake message \(i) ciphertext differs")
                    }
                    read = try responder.readMessage(written.message)
                    initiatorTransport = written.transport
                    responderTransport = read.transport
                } else {
                    written = try responder.writeMessage(payload: payload)
                    guard written.message == expected else {
                        throw Failure("handshake message \(i) ciphertext differs")
                    }
                    read = try initiator.readMessage(written.message)
                    responderTransport = written.transport
                    initiatorTransport = read.transport
                }
                guard read.payload == payload else { throw Failure("handshake message \(i) payload differs") }
                let last = i == pattern.messages.count - 1
                guard (written.transport != nil) == last, (read.transport != nil) == last else {
                    throw Failure("transport returned after message \(i) of \(pattern.messages.count)")
                }
                if last {
                    guard initiator.isFinished, responder.isFinished else { throw Failure("handshake not finished") }
                    let hi = initiatorTransport!.handshakeHash, hr = responderTransport!.handshakeHash
                    guard hi == hr, hi == initiator.handshakeHash, hr == responder.handshakeHash else {
                        throw Failure("handshake hashes differ between the sides")
                    }
                    if let h = v.handshake_hash, SharedData.bytes(hex: h) != hi {
                        throw Failure("handshake_hash differs")
                    }
                    if oneWay {
                        // §7.4: the second CipherState is discarded; the recipient must not send.
                        guard !initiatorTransport!.receive.hasKey, !responderTransport!.send.hasKey else {
                            throw Failure("one-way pattern left a key for responder-to-initiator traffic")
                        }
                    }
                }
            } else {
                // Transport message.
                guard initiatorTransport != nil, responderTransport != nil else { throw Failure("no transport") }
                let ciphertext: [UInt8]
                let plaintext: [UInt8]
                if fromInitiator {
                    ciphertext = try initiatorTransport!.send.encryptWithAd([UInt8](), payload)
                    guard ciphertext == expected else { throw Failure("transport message \(i) ciphertext differs") }
                    plaintext = try responderTransport!.receive.decryptWithAd([UInt8](), ciphertext)
                } else {
                    ciphertext = try responderTransport!.send.encryptWithAd([UInt8](), payload)
                    guard ciphertext == expected else { throw Failure("transport message \(i) ciphertext differs") }
                    plaintext = try initiatorTransport!.receive.decryptWithAd([UInt8](), ciphertext)
                }
                guard plaintext == payload else { throw Failure("transport message \(i) plaintext differs") }
            }
        }
    }
}

/// Vectors fix every ephemeral, so a handshake replaying one must never ask for randomness.
struct NoVectorRandomness: RandomSource {
    func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        preconditionFailure("a test vector handshake generated a key instead of using the fixed one")
    }
}
