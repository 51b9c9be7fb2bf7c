import Foundation

/// The libFuzzer glue every target shares.
///
/// A target exports `LLVMFuzzerTestOneInput` (one input, return 0) and `LLVMFuzzerInitialize`,
/// which calls `Harness.initialize(seeds:)`: when `USP_FUZZ_WRITE_SEEDS=DIR` is set, the target
/// writes its seed corpus (inputs made by the project's own encoders) into DIR and exits instead of
/// fuzzing. `scripts/fuzz.sh --seeds` uses it to regenerate `Fuzz/Corpus/<target>/`.
public enum Harness {
    /// Runs `body` on one input (what `LLVMFuzzerTestOneInput` does); libFuzzer wants 0 back.
    @inline(__always)
    public static func run(_ data: UnsafePointer<UInt8>?, _ size: Int, _ body: ([UInt8]) -> Void) -> CInt {
        body(bytes(data, size))
        return 0
    }

    /// The input as an array (the decoders under test take arrays or raw buffers).
    @inline(__always)
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }

    /// Writes the seeds and exits when `USP_FUZZ_WRITE_SEEDS` names a directory; otherwise returns
    /// 0 (what `LLVMFuzzerInitialize` returns).
    @discardableResult
    public static func initialize(seeds: () -> [(name: String, bytes: [UInt8])]) -> CInt {
        guard let directory = ProcessInfo.processInfo.environment["USP_FUZZ_WRITE_SEEDS"], !directory.isEmpty else { return 0 }
        let url = URL(fileURLWithPath: directory, isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            let all = seeds()
            for seed in all {
                try Data(seed.bytes).write(to: url.appendingPathComponent(seed.name))
            }
            print("wrote \(all.count) seeds to \(directory)")
            exit(0)
        } catch {
            print("cannot write seeds to \(directory): \(error)")
            exit(1)
        }
    }
}

/// `LLVMFuzzerInitialize`'s parameters.
public typealias FuzzArgc = UnsafeMutablePointer<CInt>?
public typealias FuzzArgv = UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?

/// Reads a fuzz input front to back; past the end every read yields zeros or nothing, so a
/// harness never has to check lengths.
public struct ByteCursor {
    public let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }
    public var remainingCount: Int { max(0, bytes.count - offset) }

    public mutating func u8() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u16() -> UInt16 { UInt16(u8()) << 8 | UInt16(u8()) }

    public mutating func u32() -> UInt32 { UInt32(u16()) << 16 | UInt32(u16()) }

    /// Up to `count` bytes (fewer at the end).
    public mutating func take(_ count: Int) -> [UInt8] {
        let n = max(0, min(count, remainingCount))
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    /// Exactly `count` bytes: what is left, then zeros.
    public mutating func takePadded(_ count: Int) -> [UInt8] {
        var out = take(count)
        if out.count < count { out += [UInt8](repeating: 0, count: count - out.count) }
        return out
    }

    public mutating func rest() -> [UInt8] { take(remainingCount) }
}

/// A property of the code under test. Unlike `precondition`, it prints its message in a release
/// build before it traps, so the crash log says which property broke.
@inline(__always)
public func check(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fail(message(), file: file, line: line) }
}

/// A broken property: prints where and why, then traps.
public func fail(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    FileHandle.standardError.write(Data("fuzz property failed at \(file):\(line): \(message)\n".utf8))
    fatalError(message)
}

/// A round trip: `decodeAgain` (decoding what `value` encodes to) must succeed and give `value` back.
public func checkRoundTrip<T: Equatable>(_ value: T, _ what: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line,
                                         _ decodeAgain: () throws -> T) {
    let again: T
    do { again = try decodeAgain() } catch { fail("\(what()) does not decode again: \(error)", file: file, line: line) }
    check(again == value, "\(what()) changed in a round trip", file: file, line: line)
}
