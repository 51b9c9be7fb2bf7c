#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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

/// The operating system's CSPRNG: getrandom(2) on Linux and arc4random_buf on Darwin, one call per
/// buffer, which is what Swift's `SystemRandomNumberGenerator` reads too (it only reads 8 bytes a
/// call; a 992-byte fill that way took about 125 syscalls). Without getrandom it falls back to
/// `SystemRandomNumberGenerator`.
public struct SystemRandomSource: RandomSource {
    public init() {}

    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        var offset = 0
        #if canImport(Darwin)
        arc4random_buf(base, buffer.count)
        offset = buffer.count
        #elseif os(Linux)
        if let getrandom = Self.getrandom {
            while offset < buffer.count {
                let n = getrandom(base + offset, buffer.count - offset, 0)
                if n > 0 {
                    offset += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    break  // ENOSYS and the like: the fallback below fills the rest
                }
            }
        }
        #endif
        var generator = SystemRandomNumberGenerator()
        while offset < buffer.count {
            var word = generator.next()
            let n = Swift.min(8, buffer.count - offset)
            withUnsafeBytes(of: &word) { w in
                for i in 0..<n { buffer[offset + i] = w[i] }
            }
            offset += n
        }
    }

    #if os(Linux)
    private typealias GetRandom = @convention(c) (UnsafeMutableRawPointer?, Int, UInt32) -> Int
    /// glibc ≥ 2.25 and musl ≥ 1.1.20 export getrandom; the Swift C module does not declare it, so it
    /// is looked up once by name.
    private static let getrandom: GetRandom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "getrandom") else { return nil }
        return unsafeBitCast(symbol, to: GetRandom.self)
    }()
    #endif
}
