/// Where the core gets randomness. Production code uses `SystemRandomSource`;
/// tests inject a deterministic one. The core never reads randomness any other way.
public protocol RandomSource: Sendable {
    func fill(_ buffer: UnsafeMutableRawBufferPointer)
}

extension RandomSource {
    public func bytes(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }
}

/// The operating system's CSPRNG (getrandom(2) through Swift's `SystemRandomNumberGenerator`).
public struct SystemRandomSource: RandomSource {
    public init() {}
    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var generator = SystemRandomNumberGenerator()
        var offset = 0
        while offset < buffer.count {
            var word = generator.next()
            let n = Swift.min(8, buffer.count - offset)
            withUnsafeBytes(of: &word) { w in
                for i in 0..<n { buffer[offset + i] = w[i] }
            }
            offset += n
        }
    }
}
