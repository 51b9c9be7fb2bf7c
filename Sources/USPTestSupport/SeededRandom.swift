import Crypto
import Foundation
import USPCore

/// Deterministic randomness for tests: a counter-mode SHA-256 stream. The same seed yields the
/// same bytes, so a session or a token driven by it is reproducible.
public final class SeededRandom: RandomSource, @unchecked Sendable {
    private var counter: UInt64 = 0
    private let seed: UInt64
    private let lock = NSLock()
    public init(seed: UInt64) { self.seed = seed }
    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        lock.lock(); defer { lock.unlock() }
        var offset = 0
        while offset < buffer.count {
            counter += 1
            var input = [UInt8](repeating: 0, count: 16)
            for i in 0..<8 { input[i] = UInt8(truncatingIfNeeded: seed >> (8 * i)); input[8 + i] = UInt8(truncatingIfNeeded: counter >> (8 * i)) }
            for b in SHA256.hash(data: input) where offset < buffer.count {
                buffer[offset] = b
                offset += 1
            }
        }
    }
}
