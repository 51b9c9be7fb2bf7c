import Foundation
import Synchronization
import Testing
import USPTestSupport
@testable import USPCore

/// Every bit of message 1 is a fair coin (docs/PROTOCOL.md §3.2, §3.2.2): over many message 1s of all
/// three patterns, the count of ones at each of the 8192 bit positions passes a chi-square test.
@Suite struct Message1UniformityTests {
    /// Counts of ones per bit position over `messages` (a histogram of byte values per position,
    /// turned into bit counts at the end: one increment per byte, which a debug build can afford).
    static func ones(_ messages: [[UInt8]]) -> [Int] {
        let length = HandshakeLayout.message1Length
        var histogram = [Int](repeating: 0, count: length * 256)
        histogram.withUnsafeMutableBufferPointer { h in
            for m in messages {
                m.withUnsafeBufferPointer { bytes in
                    for i in 0..<length { h[i &* 256 &+ Int(bytes[i])] &+= 1 }
                }
            }
        }
        var counts = [Int](repeating: 0, count: length * 8)
        for i in 0..<length {
            for value in 1..<256 where histogram[i * 256 + value] != 0 {
                for bit in 0..<8 where value & (1 << bit) != 0 { counts[i * 8 + bit] += histogram[i * 256 + value] }
            }
        }
        return counts
    }

    /// Chi-square with one degree of freedom for each position, and their sum (8192 degrees).
    static func chiSquare(_ counts: [Int], n: Int) -> (worst: Double, worstPosition: Int, sum: Double) {
        let half = Double(n) / 2
        var worst = 0.0, at = 0, sum = 0.0
        for (i, c) in counts.enumerated() {
            let x = (Double(c) - half) * (Double(c) - half) / half * 2
            sum += x
            if x > worst { worst = x; at = i }
        }
        return (worst, at, sum)
    }

    static func message1s(_ count: Int, pattern: HandshakeLayout.Pattern, encoding: HandshakeState.EphemeralEncoding = .elligator2) throws -> [[UInt8]] {
        let server = KeyPair.generate(using: SeededRandom(seed: 1))
        let client = KeyPair.generate(using: SeededRandom(seed: 2))
        // The system CSPRNG, as in production (a seeded SHA-256 stream costs more than the handshakes).
        let random = SystemRandomSource()
        let hello = Hello().bytes
        var out: [[UInt8]] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            var state: HandshakeState
            switch pattern {
            case .xx:
                state = try HandshakeState(protocol: HandshakeLayout.xx, role: .initiator, prologue: HandshakeLayout.prologue,
                                           localStatic: client, random: random, ephemeralEncoding: encoding)
                out.append(try state.writeMessage(payload: random.bytes(HandshakeLayout.message1PayloadLength(.xx))).message)
            case .ik, .nk:
                state = try HandshakeState(protocol: pattern.noiseProtocol, role: .initiator, prologue: HandshakeLayout.prologue,
                                           localStatic: pattern == .ik ? client : nil, remoteStatic: server.publicKey,
                                           random: random, ephemeralEncoding: encoding)
                let payload = hello + [UInt8](repeating: 0, count: HandshakeLayout.message1PayloadLength(pattern) - hello.count)
                out.append(try state.writeMessage(payload: payload).message)
            }
        }
        return out
    }

    /// How many message 1s: `USP_UNIFORMITY_MESSAGES` (CI sets 100,002), else 24,000 so that a plain
    /// `swift test` stays quick in a debug build.
    static var messageCount: Int {
        ProcessInfo.processInfo.environment["USP_UNIFORMITY_MESSAGES"].flatMap { Int($0) } ?? 24_000
    }

    @Test func everyBitOfMessage1IsBalanced() async throws {
        // A third of each pattern.
        let perPart = (Self.messageCount + 5) / 6
        // On two threads of their own: a minute of CPU on Swift's cooperative pool would starve
        // every other test's timers and sleeps meanwhile.
        let messages: [[UInt8]] = try await withCheckedThrowingContinuation { done in
            let state = Mutex<(parts: [[[UInt8]]], left: Int, failed: (any Error)?)>(([], 2, nil))
            for _ in 0..<2 {
                Thread {
                    var part: [[UInt8]] = []
                    var failure: (any Error)?
                    do {
                        // Each thread makes half of each pattern's share.
                        for pattern in HandshakeLayout.Pattern.allCases { part += try Self.message1s(perPart, pattern: pattern) }
                    } catch { failure = error }
                    let finished = state.withLock { s -> (parts: [[[UInt8]]], failed: (any Error)?)? in
                        s.parts.append(part)
                        if s.failed == nil { s.failed = failure }
                        s.left -= 1
                        return s.left == 0 ? (s.parts, s.failed) : nil
                    }
                    if let finished {
                        if let failed = finished.failed { done.resume(throwing: failed) } else { done.resume(returning: finished.parts.flatMap { $0 }) }
                    }
                }.start()
            }
        }
        #expect(messages.count >= Self.messageCount)
        #expect(messages.allSatisfy { $0.count == HandshakeLayout.message1Length })
        let n = messages.count
        let (worst, at, sum) = Self.chiSquare(Self.ones(messages), n: n)
        // Per position: 1 degree of freedom; over 8192 positions the largest of 8192 such values
        // exceeds 45 with probability about 8192 × 2.5e-11 = 2e-7. The sum has 8192 degrees of
        // freedom (mean 8192, sd 128): 6 sd either way is a one-in-a-billion event.
        print("message 1 bit balance over \(n) messages: largest chi-square \(String(format: "%.2f", worst)) at bit \(at) (byte \(at / 8)), sum \(String(format: "%.0f", sum)) over 8192 positions")
        #expect(worst < 45, "bit \(at) (byte \(at / 8)) is unbalanced: chi-square \(worst)")
        #expect(abs(sum - 8192) < 6 * 128, "sum of chi-squares \(sum)")
    }

    @Test func theTestHasTeethRawKeysShowTheirTopBit() throws {
        // Plain X25519 keys (no Elligator): bit 255 of e is always 0, which 2,000 messages show.
        let messages = try Self.message1s(2000, pattern: .nk, encoding: .plain)
        let (worst, at, _) = Self.chiSquare(Self.ones(messages), n: messages.count)
        #expect(at == 255 && worst > 1000, "the raw key's top bit (255) should stand out: bit \(at), chi-square \(worst)")
    }
}
