import PropertyBased
import Testing
@testable import USPCore

@Suite("Hello encoding, validation and negotiation")
struct HelloTests {
    @Test("default hello round trips and is valid")
    func defaultRoundTrip() throws {
        let h = Hello()
        try h.validate()
        #expect(h.bytes.count == Hello.length)
        #expect(try Hello.decode(h.bytes) == h)
    }

    @Test("a hello with every field set round trips")
    func fullRoundTrip() throws {
        for salt: UInt32 in [0, 1, 999, 40_000] {
            let h = hsHello(salt, versionMin: 3, versionMax: 200)
            #expect(try Hello.decode(h.bytes) == h)
        }
    }

    @Test("the wire layout is big-endian at the documented offsets (record_ciphers at 14) with zero reserved bytes")
    func wireLayout() {
        var h = Hello()
        h.versionMin = 0x01
        h.versionMax = 0x02
        h.flags = [.earlyDataAccepted, .paddingRequested]
        h.maxRecordPlaintext = 0x0000_1234
        h.streamWindow = 0x0102_0304
        h.maxStreams = 0x0506
        h.recordCiphers = .aesGCM
        h.rekeyLimit = 0x0102_0304_0506_0708
        h.timestamp = Timestamp(seconds: 0x1112_1314_1516_1718, nanoseconds: 0x2122_2324)
        let expected: [UInt8] =
            [0x01, 0x02, 0x00, 0x03,
             0x00, 0x00, 0x12, 0x34,
             0x01, 0x02, 0x03, 0x04,
             0x05, 0x06, 0x00, 0x01,
             0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
             0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
             0x21, 0x22, 0x23, 0x24]
            + [UInt8](repeating: 0, count: 28)
        #expect(h.bytes == expected)
    }

    @Test("reserved bytes are ignored on decode, so later revisions can use them")
    func reservedIgnored() throws {
        let h = hsHello(5)
        var bytes = h.bytes
        for i in 36..<64 { bytes[i] = UInt8(i) }
        #expect(try Hello.decode(bytes) == h)
    }

    @Test("decode needs 64 bytes; extra bytes after them are not read")
    func lengths() throws {
        let bytes = hsHello(5).bytes
        for n in [0, 1, 35, 36, 63] {
            hsExpect(.invalidHello, "\(n) bytes") { () throws(USPError) in _ = try Hello.decode(Array(bytes.prefix(n))) }
        }
        #expect(try Hello.decode(bytes + [1, 2, 3]) == hsHello(5))
    }

    /// Every invalid field, each alone on an otherwise valid hello.
    static let invalid: [(String, @Sendable (inout Hello) -> Void)] = [
        ("version_min 0", { $0.versionMin = 0; $0.versionMax = 1 }),
        ("version_min 0 max 0", { $0.versionMin = 0; $0.versionMax = 0 }),
        ("empty version range", { $0.versionMin = 3; $0.versionMax = 2 }),
        ("record size 0", { $0.maxRecordPlaintext = 0 }),
        ("record size below 1024", { $0.maxRecordPlaintext = 1023 }),
        ("record size above 65519", { $0.maxRecordPlaintext = 65520 }),
        ("record size u32 max", { $0.maxRecordPlaintext = .max }),
        ("window 0", { $0.streamWindow = 0 }),
        ("window below 16384", { $0.streamWindow = 16383 }),
        ("window above 2^31-1", { $0.streamWindow = 0x8000_0000 }),
        ("window u32 max", { $0.streamWindow = .max }),
        ("max_streams 0", { $0.maxStreams = 0 }),
        ("rekey limit 0", { $0.rekeyLimit = 0 }),
        ("rekey limit below 2^20", { $0.rekeyLimit = (1 << 20) - 1 }),
        ("nanos 10^9", { $0.timestamp = Timestamp(seconds: 5, nanoseconds: 1_000_000_000) }),
        ("nanos u32 max", { $0.timestamp = Timestamp(seconds: 5, nanoseconds: .max) }),
        ("unknown flag bit 2", { $0.flags = Hello.Flags(rawValue: 1 << 2) }),
        ("unknown flag bit 15 with known ones", { $0.flags = Hello.Flags(rawValue: 0x8003) }),
    ]

    @Test("every invalid field throws invalidHello from validate and from decode", arguments: 0..<HelloTests.invalid.count)
    func invalidFields(index: Int) {
        let (name, mutate) = Self.invalid[index]
        var h = hsHello(9)
        mutate(&h)
        hsExpect(.invalidHello, "validate: \(name)") { () throws(USPError) in try h.validate() }
        let bytes = h.bytes
        hsExpect(.invalidHello, "decode: \(name)") { () throws(USPError) in _ = try Hello.decode(bytes) }
    }

    @Test("the bounds themselves are valid")
    func boundsAreValid() throws {
        var h = Hello()
        h.versionMin = 1; h.versionMax = 255
        h.maxRecordPlaintext = 1024
        h.streamWindow = 16384
        h.maxStreams = 1
        h.rekeyLimit = 1 << 20
        h.timestamp = Timestamp(seconds: .max, nanoseconds: 999_999_999)
        h.flags = [.earlyDataAccepted, .paddingRequested]
        try h.validate()
        #expect(try Hello.decode(h.bytes) == h)
        h.maxRecordPlaintext = 65519
        h.streamWindow = 0x7FFF_FFFF
        h.maxStreams = .max
        h.rekeyLimit = .max
        h.versionMin = 255
        try h.validate()
        #expect(try Hello.decode(h.bytes) == h)
    }

    @Test("negotiate picks the highest common version, symmetric in its arguments")
    func negotiate() throws {
        func hello(_ lo: UInt8, _ hi: UInt8) -> Hello { var h = Hello(); h.versionMin = lo; h.versionMax = hi; return h }
        let cases: [((UInt8, UInt8), (UInt8, UInt8), UInt8)] = [
            ((1, 1), (1, 1), 1),
            ((1, 3), (1, 2), 2),
            ((1, 3), (2, 5), 3),
            ((2, 5), (1, 3), 3),
            ((4, 9), (1, 4), 4),
            ((1, 255), (255, 255), 255),
        ]
        for (c, s, want) in cases {
            #expect(try Hello.negotiate(client: hello(c.0, c.1), server: hello(s.0, s.1)) == want)
            #expect(try Hello.negotiate(client: hello(s.0, s.1), server: hello(c.0, c.1)) == want)
        }
        for (c, s) in [((1, 1), (2, 2)), ((1, 3), (4, 9)), ((5, 5), (1, 4))] as [((UInt8, UInt8), (UInt8, UInt8))] {
            hsExpect(.versionMismatch) { () throws(USPError) in _ = try Hello.negotiate(client: hello(c.0, c.1), server: hello(s.0, s.1)) }
            hsExpect(.versionMismatch) { () throws(USPError) in _ = try Hello.negotiate(client: hello(s.0, s.1), server: hello(c.0, c.1)) }
        }
    }

    @Test("property: random bytes into Hello.decode give a valid hello or invalidHello, never a crash")
    func randomBytes() async {
        await propertyCheck(count: 500, input: Gen.uint8().array(of: 0...80)) { bytes in
            do throws(USPError) {
                let h = try Hello.decode(bytes)
                // Success means validate passes and re-encoding reproduces the input with reserved bytes zeroed.
                try h.validate()
                var canonical = Array(bytes.prefix(64))
                canonical[14] = 0; canonical[15] = 0
                for i in 36..<64 { canonical[i] = 0 }
                #expect(h.bytes == canonical)
            } catch {
                #expect(error.code == .invalidHello, "\(error)")
            }
        }
    }

    @Test("property: random valid-looking hellos decode exactly as encoded")
    func randomValidRoundTrip() async {
        let gen = zip(
            Gen.uint8(in: 1...255),
            Gen.uint32(in: 1024...65519),
            Gen.uint32(in: 16384...0x7FFF_FFFF),
            Gen.uint16(in: 1...UInt16.max),
            Gen.uint64(in: (1 << 20)...UInt64.max),
            Gen.uint64(),
            Gen.uint32(in: 0...999_999_999),
            Gen.uint16(in: 0...3)
        )
        await propertyCheck(count: 300, input: gen) { fields in
            let (vmin, rec, win, streams, rekey, secs, nanos, flags) = fields
            var h = Hello()
            h.versionMin = vmin
            h.versionMax = UInt8(min(255, Int(vmin) + Int(secs % 7)))
            h.maxRecordPlaintext = rec
            h.streamWindow = win
            h.maxStreams = streams
            h.rekeyLimit = rekey
            h.timestamp = Timestamp(seconds: secs, nanoseconds: nanos)
            h.flags = Hello.Flags(rawValue: flags)
            #expect(throws: Never.self) { try h.validate() }
            #expect((try? Hello.decode(h.bytes)) == h)
        }
    }
}
