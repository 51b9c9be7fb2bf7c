import PropertyBased
import Testing
@testable import USPCore
import USPTestSupport

// MARK: - Generators

func randomBytes<R: RandomNumberGenerator>(_ rng: inout R, _ range: ClosedRange<Int>) -> [UInt8] {
    let n = Int.random(in: range, using: &rng)
    return (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
}

func randomText<R: RandomNumberGenerator>(_ rng: inout R) -> String {
    let n = Int.random(in: 0...24, using: &rng)
    var s = String.UnicodeScalarView()
    for _ in 0..<n {
        switch Int.random(in: 0...3, using: &rng) {
        case 0: s.append(Unicode.Scalar(UInt8.random(in: 0x20...0x7E, using: &rng)))
        case 1: s.append(Unicode.Scalar(UInt32.random(in: 0x80...0x7FF, using: &rng))!)
        case 2: s.append(Unicode.Scalar(UInt32.random(in: 0xE000...0xFFFF, using: &rng))!)
        default: s.append(Unicode.Scalar(UInt32.random(in: 0x10000...0x10FFFF, using: &rng))!)
        }
    }
    return String(s)
}

func randomStreamID<R: RandomNumberGenerator>(_ rng: inout R) -> UInt32 {
    Bool.random(using: &rng) ? UInt32.random(in: 1...16, using: &rng) : UInt32.random(in: 1...UInt32.max, using: &rng)
}

/// Any valid frame but PADDING (which may only come last).
func randomFrame<R: RandomNumberGenerator>(_ rng: inout R) -> Frame {
    switch UInt8.random(in: 1...0x0C, using: &rng) {
    case 0x01: .message(kind: UInt8.random(in: 0...255, using: &rng), json: randomBytes(&rng, 0...64))
    case 0x02: .open(stream: randomStreamID(&rng), session: randomBytes(&rng, 0...64))
    case 0x03: .accept(opener: randomStreamID(&rng), acceptor: randomStreamID(&rng))
    case 0x04: .reject(opener: randomStreamID(&rng), code: UInt16.random(in: 0...UInt16.max, using: &rng), message: randomText(&rng))
    case 0x05: .data(stream: randomStreamID(&rng), data: randomBytes(&rng, 1...300))
    case 0x06: .window(stream: randomStreamID(&rng), increment: UInt32.random(in: 1...UInt32.max, using: &rng))
    case 0x07: .fin(stream: randomStreamID(&rng))
    case 0x08: .reset(stream: randomStreamID(&rng), code: UInt16.random(in: 0...UInt16.max, using: &rng))
    case 0x09: .rekey
    case 0x0A: .ping(UInt64.random(in: 0...UInt64.max, using: &rng))
    case 0x0B: .pong(UInt64.random(in: 0...UInt64.max, using: &rng))
    default: .close(code: UInt16.random(in: 0...UInt16.max, using: &rng), reason: randomText(&rng))
    }
}

/// A record: 0…12 frames, sometimes followed by padding.
let validRecordGen = Generator<[Frame], Shrink.None<[Frame]>>(run: { rng in
    var frames = (0..<Int.random(in: 0...12, using: &rng)).map { _ in randomFrame(&rng) }
    if Bool.random(using: &rng) { frames.append(.padding(length: Int.random(in: 1...40, using: &rng))) }
    return frames
})

/// Bytes that look like frames: random type bytes near the valid range, plausible lengths,
/// random bodies, and mutated or truncated valid records.
let hostileBytesGen = Generator<[UInt8], Shrink.None<[UInt8]>>(run: { rng in
    switch Int.random(in: 0...3, using: &rng) {
    case 0:
        return randomBytes(&rng, 0...200)
    case 1:
        var bytes: [UInt8] = []
        for _ in 0..<Int.random(in: 1...8, using: &rng) {
            bytes.append(UInt8.random(in: 0...0x0E, using: &rng))
            let length = Int.random(in: 0...14, using: &rng)
            let declared = Bool.random(using: &rng) ? length : Int.random(in: 0...20, using: &rng)
            bytes += [UInt8(declared >> 8), UInt8(truncatingIfNeeded: declared)]
            bytes += randomBytes(&rng, length...length)
        }
        return bytes
    default:
        let frames = (0..<Int.random(in: 1...6, using: &rng)).map { _ in randomFrame(&rng) }
        var bytes = encodeRecord(frames)
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            let i = Int.random(in: 0..<bytes.count, using: &rng)
            bytes[i] = Bool.random(using: &rng) ? UInt8.random(in: 0...255, using: &rng) : bytes[i] ^ 0x80
        }
        if Bool.random(using: &rng) { bytes.removeLast(Int.random(in: 0...min(8, bytes.count), using: &rng)) }
        return bytes
    }
})

// MARK: - Properties

@Suite struct FramePropertyTests {
    @Test func randomValidRecordsRoundTrip() async throws {
        await propertyCheck(count: 500, input: validRecordGen) { frames throws in
            let record = encodeRecord(frames)
            #expect(record.count == frames.map(\.encodedLength).reduce(0, +))
            #expect(try Frame.decodeAll(record) == frames)
        }
    }

    /// Random bytes give frames or a frame error, never a crash; whatever decodes
    /// re-encodes to exactly the same bytes (the encoding is canonical).
    @Test func hostileBytesNeverCrash() async throws {
        await propertyCheck(count: 2000, input: hostileBytesGen) { bytes in
            do throws(USPError) {
                let frames = try Frame.decodeAll(bytes)
                #expect(encodeRecord(frames) == bytes)
            } catch {
                #expect(error.code == .malformedFrame || error.code == .unknownFrameType, "\(error)")
                #expect(!error.detail.isEmpty)
            }
        }
    }

    @Test func uniformRandomBytesNeverCrash() async throws {
        await propertyCheck(count: 1000, input: Gen.uint8().array(of: 0...600)) { bytes in
            bytes.withUnsafeBytes { buf in
                var reader = FrameReader(buf)
                var steps = 0
                do throws(USPError) {
                    while let _ = try reader.next() {
                        steps += 1
                        #expect(steps <= buf.count)
                    }
                } catch {
                    #expect(error.code == .malformedFrame || error.code == .unknownFrameType)
                }
                #expect(reader.isAtEnd)
            }
        }
    }

    /// The reader's UTF-8 check agrees with the standard library's.
    @Test func utf8ValidationMatchesStandardLibrary() async throws {
        let gen = Generator<[UInt8], Shrink.None<[UInt8]>>(run: { rng in
            (0..<Int.random(in: 0...12, using: &rng)).map { _ in
                // Bias towards lead and continuation bytes.
                Bool.random(using: &rng)
                    ? UInt8.random(in: 0x80...0xFF, using: &rng)
                    : [0x41, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0x80, 0xBF, 0x9F, 0x90][Int.random(in: 0...9, using: &rng)]
            }
        })
        await propertyCheck(count: 3000, input: gen) { bytes in
            let ours = bytes.withUnsafeBytes { UTF8Validation.firstInvalidOffset($0) == nil }
            let stdlib = String(validating: bytes, as: UTF8.self) != nil
            #expect(ours == stdlib, "\(bytes)")
        }
    }
}
