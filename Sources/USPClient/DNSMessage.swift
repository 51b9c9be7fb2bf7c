/// The parts of a DNS response (RFC 1035) that a server-key lookup reads: the AD bit (RFC 4035
/// §3.2.3), the response code, and the TXT and SRV records of the answer section. Names may be
/// compressed. Every malformed input throws; nothing is read past the end.
struct DNSMessage: Equatable {
    struct SRV: Equatable {
        var priority: UInt16
        var weight: UInt16
        var port: UInt16
        var target: String
    }

    static let typeTXT: UInt16 = 16
    static let typeSRV: UInt16 = 33

    /// The resolver validated the answer with DNSSEC (the AD bit).
    var authenticated: Bool
    var responseCode: Int
    /// Each TXT record's strings, joined.
    var texts: [String] = []
    var services: [SRV] = []

    struct Malformed: Error, Equatable {
        let detail: String
    }

    init(parsing bytes: [UInt8]) throws(Malformed) {
        var r = Reader(bytes: bytes)
        _ = try r.u16()  // id
        let flags = try r.u16()
        authenticated = flags & 0x0020 != 0
        responseCode = Int(flags & 0x000F)
        let questions = try r.u16(), answers = try r.u16()
        _ = try r.u16(); _ = try r.u16()  // authority, additional: not read
        for _ in 0..<questions {
            _ = try r.name()
            try r.skip(4)
        }
        for _ in 0..<answers {
            _ = try r.name()
            let type = try r.u16(), klass = try r.u16()
            try r.skip(4)  // TTL
            let length = Int(try r.u16())
            let end = r.offset + length
            guard end <= bytes.count else { throw Malformed(detail: "a record's data runs past the end of the message") }
            if klass == 1, type == Self.typeTXT {
                var text: [UInt8] = []
                while r.offset < end {
                    let n = Int(try r.u8())
                    guard r.offset + n <= end else { throw Malformed(detail: "a TXT string runs past its record") }
                    text += bytes[r.offset..<r.offset + n]
                    r.offset += n
                }
                texts.append(String(decoding: text, as: UTF8.self))
            } else if klass == 1, type == Self.typeSRV {
                let priority = try r.u16(), weight = try r.u16(), port = try r.u16()
                services.append(SRV(priority: priority, weight: weight, port: port, target: try r.name()))
                guard r.offset == end else { throw Malformed(detail: "an SRV record's length does not match its data") }
            }
            r.offset = end
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func u8() throws(Malformed) -> UInt8 {
            guard offset < bytes.count else { throw Malformed(detail: "the message ends early (at byte \(offset))") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func u16() throws(Malformed) -> UInt16 {
            UInt16(try u8()) << 8 | UInt16(try u8())
        }

        mutating func skip(_ n: Int) throws(Malformed) {
            guard offset + n <= bytes.count else { throw Malformed(detail: "the message ends early (at byte \(offset))") }
            offset += n
        }

        /// A domain name, following compression pointers (each must point backwards, so a loop
        /// cannot happen); leaves `offset` after the name as written here.
        mutating func name() throws(Malformed) -> String {
            var labels: [String] = []
            var at = offset
            var resumeAt: Int?
            var total = 0
            while true {
                guard at < bytes.count else { throw Malformed(detail: "a name runs past the end of the message") }
                let n = Int(bytes[at])
                if n == 0 { at += 1; break }
                if n & 0xC0 == 0xC0 {
                    guard at + 1 < bytes.count else { throw Malformed(detail: "a name's pointer runs past the end") }
                    let target = (n & 0x3F) << 8 | Int(bytes[at + 1])
                    guard target < at else { throw Malformed(detail: "a name's pointer does not point backwards") }
                    if resumeAt == nil { resumeAt = at + 2 }
                    at = target
                    continue
                }
                guard n & 0xC0 == 0 else { throw Malformed(detail: "a label of unknown type 0x\(String(n, radix: 16))") }
                guard at + 1 + n <= bytes.count else { throw Malformed(detail: "a label runs past the end of the message") }
                labels.append(String(decoding: bytes[(at + 1)...(at + n)], as: UTF8.self))
                total += n + 1
                guard total <= 255 else { throw Malformed(detail: "a name longer than 255 bytes") }
                at += 1 + n
            }
            offset = resumeAt ?? at
            return labels.joined(separator: ".")
        }
    }
}
