import PropertyBased
import Testing
@testable import USPCore

@Suite("Record round trips and layout")
struct RecordRoundTripTests {
    static let sizes = [1, 2, 1000, 16384, 65519]

    @Test("seal then open returns the plaintext; a record is L + 34 bytes", arguments: RecordRoundTripTests.sizes)
    func roundTrip(size: Int) throws {
        var (sealer, opener) = rtPair()
        for i in 0..<3 {
            let p = rtPlaintext(size, tag: UInt64(i))
            let record = try rtSeal(&sealer, p)
            #expect(record.count == size + RecordLayout.overhead)
            #expect(record.count == size + 34)
            // Every byte is ciphertext: the plaintext does not appear where it would sit.
            #expect(Array(record[18..<18 + size]) != p)
            #expect(try rtOpen(&opener, record) == p)
        }
        #expect(sealer.recordsSealed == 3)
        #expect(opener.recordsOpened == 3)
        #expect(sealer.bytesSinceRekey == UInt64(3 * size))
        #expect(opener.bytesSinceRekey == UInt64(3 * size))
    }

    @Test("RecordReader opens every size, in one append", arguments: RecordRoundTripTests.sizes)
    func readerRoundTrip(size: Int) throws {
        var (sealer, opener) = rtPair()
        let plaintexts = (0..<3).map { rtPlaintext(size, tag: UInt64($0)) }
        var stream: [UInt8] = []
        for p in plaintexts { stream += try rtSeal(&sealer, p) }
        var reader = RecordReader(opener: opener)
        reader.append(stream)
        #expect(try rtDrain(&reader) == plaintexts)
        #expect(reader.bufferedByteCount == 0)
        try reader.checkEndOfInput()
        _ = opener
    }

    @Test("the in-place seal writes header at 0..<18 and the tag after the plaintext")
    func inPlaceSeal() throws {
        var (sealer, opener) = rtPair()
        let p = rtPlaintext(100)
        var buffer = [UInt8](repeating: 0xEE, count: 18) + p + [UInt8](repeating: 0xEE, count: 16 + 5)
        var written = 0
        var failure: USPError?
        buffer.withUnsafeMutableBytes { b in
            do throws(USPError) { written = try sealer.seal(plaintextCount: 100, in: b) } catch { failure = error }
        }
        #expect(failure == nil)
        #expect(written == 134)
        #expect(Array(buffer.suffix(5)) == [UInt8](repeating: 0xEE, count: 5), "nothing past the tag is touched")
        #expect(try rtOpen(&opener, Array(buffer.prefix(written))) == p)
    }

    @Test("record i uses nonces 2i (header, encrypted u16 length) and 2i+1 (body)")
    func nonceLayout() throws {
        let (a, _) = rtCipherPair(3)
        var sealer = RecordSealer(cipher: a)
        let key = HSSeededRandom(seed: 3).bytes(32)
        for i in 0..<4 {
            let p = rtPlaintext(300 + i, tag: UInt64(i))
            let record = try rtSeal(&sealer, p)
            var raw = try CipherState(key: key)
            raw.setNonce(UInt64(2 * i))
            let length = try raw.decryptWithAd([], record[0..<18])
            #expect(length == [UInt8((300 + i) >> 8), UInt8((300 + i) & 0xFF)])
            #expect(raw.nonce == UInt64(2 * i + 1))
            #expect(try raw.decryptWithAd([], record[18...]) == p)
        }
    }

    @Test("records flow both ways over the keys of a real handshake", arguments: HandshakeLayout.Pattern.allCases)
    func overHandshakeKeys(pattern: HandshakeLayout.Pattern) throws {
        let run = try hsRunHandshake(pattern)
        var clientSealer = RecordSealer(cipher: run.client.transport.send)
        var serverOpener = RecordOpener(cipher: run.server.transport.receive)
        var serverSealer = RecordSealer(cipher: run.server.transport.send)
        var clientOpener = RecordOpener(cipher: run.client.transport.receive)
        for size in [1, 500, 65519] {
            let up = rtPlaintext(size, tag: 1), down = rtPlaintext(size, tag: 2)
            #expect(try rtOpen(&serverOpener, try rtSeal(&clientSealer, up)) == up)
            #expect(try rtOpen(&clientOpener, try rtSeal(&serverSealer, down)) == down)
        }
        // A record sent one way cannot be opened as the other direction.
        let probe = try rtSeal(&clientSealer, [1, 2, 3])
        hsExpect(.recordTampered) { () throws(USPError) in _ = try rtOpen(&clientOpener, probe) }
    }

    @Test("shouldRekey turns on at rekeyAfterBytes and off after rekey")
    func shouldRekey() throws {
        var (sealer, opener) = rtPair(rekeyAfterBytes: 2000)
        _ = try rtOpen(&opener, try rtSeal(&sealer, rtPlaintext(1999)))
        #expect(!sealer.shouldRekey)
        _ = try rtOpen(&opener, try rtSeal(&sealer, rtPlaintext(1)))
        #expect(sealer.shouldRekey)
        try sealer.rekey()
        try opener.rekey()
        #expect(!sealer.shouldRekey)
        #expect(sealer.bytesSinceRekey == 0)
        #expect(opener.bytesSinceRekey == 0)
        #expect(try rtOpen(&opener, try rtSeal(&sealer, [9])) == [9])
    }
}

@Suite("Record failures")
struct RecordFailureTests {
    @Test("a header announcing more than the opener's maxPlaintext throws recordTooLarge")
    func tooLarge() throws {
        var (sealer, opener) = rtPair(openerMax: 1024)
        #expect(try rtOpen(&opener, try rtSeal(&sealer, rtPlaintext(1024))) == rtPlaintext(1024))
        hsExpect(.recordTooLarge) { () throws(USPError) in _ = try rtOpen(&opener, try rtSeal(&sealer, rtPlaintext(1025))) }

        var (bigSealer, smallOpener) = rtPair(openerMax: 16384)
        let record = try rtSeal(&bigSealer, rtPlaintext(65519))
        var reader = RecordReader(opener: smallOpener)
        reader.append(record.prefix(18))  // the header alone is enough to refuse it
        hsExpect(.recordTooLarge) { () throws(USPError) in _ = try rtDrain(&reader) }
        _ = smallOpener
    }

    @Test("a header with length 0 throws recordEmpty")
    func empty() throws {
        var (raw, openCipher) = rtCipherPair(5)
        let header = try raw.encryptWithAd([], [0, 0])
        #expect(header.count == 18)
        let body = try raw.encryptWithAd([], [UInt8]())
        var opener = RecordOpener(cipher: openCipher)
        hsExpect(.recordEmpty) { () throws(USPError) in _ = try rtOpen(&opener, header + body) }

        var reader = RecordReader(opener: RecordOpener(cipher: openCipher))
        reader.append(header)
        hsExpect(.recordEmpty) { () throws(USPError) in _ = try rtDrain(&reader) }
    }

    @Test("a header of 65535 (more than any record may hold) is refused by a default opener")
    func maxU16Header() throws {
        var (raw, openCipher) = rtCipherPair(5)
        let header = try raw.encryptWithAd([], [0xFF, 0xFF])
        var opener = RecordOpener(cipher: openCipher)
        hsExpect(.recordTooLarge) { () throws(USPError) in _ = try rtOpen(&opener, header) }
    }

    @Test("flipping any header byte throws recordTampered")
    func tamperedHeader() throws {
        var (sealer, opener) = rtPair()
        _ = try rtOpen(&opener, try rtSeal(&sealer, rtPlaintext(10)))  // not at nonce 0
        let record = try rtSeal(&sealer, rtPlaintext(50))
        for i in 0..<18 {
            for mask: UInt8 in [0x01, 0x80] {
                var o = opener
                hsExpect(.recordTampered, "byte \(i)") { () throws(USPError) in _ = try rtOpen(&o, hsFlipped(record, at: i, mask: mask)) }
            }
        }
        #expect(try rtOpen(&opener, record) == rtPlaintext(50))
    }

    @Test("flipping any body byte throws recordTampered")
    func tamperedBody() throws {
        var (sealer, opener) = rtPair()
        let record = try rtSeal(&sealer, rtPlaintext(64))
        for i in 18..<record.count {
            var o = opener
            hsExpect(.recordTampered, "byte \(i)") { () throws(USPError) in _ = try rtOpen(&o, hsFlipped(record, at: i)) }
        }
        // Truncating or extending the body also fails authentication.
        var o = opener
        var reader = RecordReader(opener: o)
        var extended = record
        extended.insert(0, at: 30)
        reader.append(extended)
        hsExpect(.recordTampered) { () throws(USPError) in _ = try rtDrain(&reader) }
        #expect(try rtOpen(&o, record) == rtPlaintext(64))
    }

    @Test("the same record fed again throws recordReplayed")
    func replayed() throws {
        var (sealer, opener) = rtPair()
        let records = try (0..<3).map { i throws(USPError) in try rtSeal(&sealer, rtPlaintext(20, tag: UInt64(i))) }
        _ = try rtOpen(&opener, records[0])
        _ = try rtOpen(&opener, records[1])
        var o = opener
        hsExpect(.recordReplayed, "latest") { () throws(USPError) in _ = try rtOpen(&o, records[1]) }
        o = opener
        hsExpect(.recordReplayed, "older") { () throws(USPError) in _ = try rtOpen(&o, records[0]) }

        var reader = RecordReader(opener: RecordOpener(cipher: rtCipherPair().1))
        reader.append(records[0] + records[0])
        hsExpect(.recordReplayed) { () throws(USPError) in _ = try rtDrain(&reader) }
        #expect(try rtOpen(&opener, records[2]) == rtPlaintext(20, tag: 2))
    }

    @Test("a later record delivered first throws recordReordered")
    func reordered() throws {
        var (sealer, opener) = rtPair()
        let records = try (0..<3).map { i throws(USPError) in try rtSeal(&sealer, rtPlaintext(20, tag: UInt64(i))) }
        var o = opener
        hsExpect(.recordReordered) { () throws(USPError) in _ = try rtOpen(&o, records[1]) }
        o = opener
        hsExpect(.recordReordered) { () throws(USPError) in _ = try rtOpen(&o, records[2]) }

        var reader = RecordReader(opener: opener)
        reader.append(records[1] + records[0])
        hsExpect(.recordReordered) { () throws(USPError) in _ = try rtDrain(&reader) }
        #expect(try rtOpen(&opener, records[0]) == rtPlaintext(20, tag: 0))
    }

    @Test("replays and reorders beyond the 32-record diagnosis window are reported as tampering")
    func diagnosisWindow() throws {
        var (sealer, opener) = rtPair()
        let records = try (0..<40).map { i throws(USPError) in try rtSeal(&sealer, [UInt8(i)]) }
        var fresh = opener
        hsExpect(.recordReordered) { () throws(USPError) in _ = try rtOpen(&fresh, records[32]) }
        fresh = opener
        hsExpect(.recordTampered) { () throws(USPError) in _ = try rtOpen(&fresh, records[33]) }
        for r in records { _ = try rtOpen(&opener, r) }
        var o = opener
        hsExpect(.recordReplayed) { () throws(USPError) in _ = try rtOpen(&o, records[8]) }
        o = opener
        hsExpect(.recordTampered) { () throws(USPError) in _ = try rtOpen(&o, records[7]) }
    }

    @Test("a record from another key (another session) throws recordTampered")
    func otherKey() throws {
        var (sealer, _) = rtPair(seed: 1)
        var (_, opener) = rtPair(seed: 2)
        hsExpect(.recordTampered) { () throws(USPError) in _ = try rtOpen(&opener, try rtSeal(&sealer, [1, 2, 3])) }
    }
}

@Suite("RecordReader streaming and truncation")
struct RecordReaderTests {
    static func stream(count: Int = 12, seed: UInt64 = 1) throws -> (bytes: [UInt8], plaintexts: [[UInt8]], opener: RecordOpener) {
        var (sealer, opener) = rtPair(seed: seed)
        let sizes = [1, 2, 17, 1000, 16384, 65519, 3, 4096, 1, 700, 65519, 5]
        var bytes: [UInt8] = [], plaintexts: [[UInt8]] = []
        for i in 0..<count {
            let p = rtPlaintext(sizes[i % sizes.count], tag: UInt64(i))
            plaintexts.append(p)
            bytes += try rtSeal(&sealer, p)
        }
        return (bytes, plaintexts, opener)
    }

    @Test("fed one byte at a time the reader yields the same plaintexts")
    func oneByteAtATime() throws {
        let (bytes, plaintexts, opener) = try Self.stream()
        var reader = RecordReader(opener: opener)
        var got: [[UInt8]] = []
        for b in bytes {
            reader.append(CollectionOfOne(b))
            got += try rtDrain(&reader)
        }
        #expect(got == plaintexts)
        try reader.checkEndOfInput()
    }

    @Test("fed in random chunk sizes the reader yields the same plaintexts", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func randomChunks(seed: UInt64) throws {
        let (bytes, plaintexts, opener) = try Self.stream(seed: seed)
        let random = HSSeededRandom(seed: seed * 31)
        var reader = RecordReader(opener: opener)
        var got: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            let r = random.bytes(3)
            // Mostly small chunks, sometimes up to 128 KiB (several records at once).
            let limit = r[2] < 32 ? 131_072 : (r[2] < 128 ? 4096 : 64)
            let n = min(bytes.count - offset, 1 + (Int(r[0]) << 8 | Int(r[1])) % limit)
            if n % 2 == 0 {
                reader.append(bytes[offset..<offset + n])
            } else {
                bytes[offset..<offset + n].withUnsafeBytes { reader.append($0) }
            }
            offset += n
            got += try rtDrain(&reader)
        }
        #expect(got == plaintexts)
        #expect(reader.bufferedByteCount == 0)
        try reader.checkEndOfInput()
    }

    @Test("checkEndOfInput after a partial record throws recordTruncated, at every cut point")
    func truncation() throws {
        let (bytes, _, opener) = try Self.stream(count: 3)
        // Record boundaries: 1+34, 2+34, 17+34.
        let ends = [35, 71, 122]
        #expect(bytes.count == 122)
        for cut in 0...bytes.count {
            var reader = RecordReader(opener: opener)
            reader.append(bytes.prefix(cut))
            let got = try rtDrain(&reader)
            #expect(got.count == ends.filter { $0 <= cut }.count)
            if cut == 0 || ends.contains(cut) {
                #expect(throws: Never.self, "cut \(cut)") { try reader.checkEndOfInput() }
            } else {
                hsExpect(.recordTruncated, "cut \(cut)") { () throws(USPError) in try reader.checkEndOfInput() }
            }
        }
    }

    @Test("the plaintext view can be modified in place and is only the record's bytes")
    func plaintextView() throws {
        var (sealer, opener) = rtPair()
        var reader = RecordReader(opener: opener)
        reader.append(try rtSeal(&sealer, [1, 2, 3]) + rtSeal(&sealer, [4, 5]))
        let first = try reader.nextRecord { (b: UnsafeMutableRawBufferPointer) throws(USPError) -> [UInt8] in
            b[0] = 99
            return Array(b)
        }
        #expect(first == [99, 2, 3])
        let second = try reader.nextRecord { (b: UnsafeMutableRawBufferPointer) throws(USPError) -> Int in b.count }
        #expect(second == 2)
        #expect(try reader.nextRecord { (b: UnsafeMutableRawBufferPointer) throws(USPError) -> Int in b.count } == nil)
        _ = opener
    }

    @Test("an error thrown by the consumer closure propagates")
    func consumerError() throws {
        var (sealer, opener) = rtPair()
        var reader = RecordReader(opener: opener)
        reader.append(try rtSeal(&sealer, [1]))
        hsExpect(.malformedFrame) { () throws(USPError) in
            _ = try reader.nextRecord { (_: UnsafeMutableRawBufferPointer) throws(USPError) -> Int in throw USPError(.malformedFrame) }
        }
        _ = opener
    }

    @Test("property: random bytes into RecordReader give an error or need more bytes, never a crash or a record")
    func randomBytes() async {
        let (_, openCipher) = rtCipherPair(8)
        await propertyCheck(count: 300, input: Gen.uint8().array(of: 0...400)) { bytes in
            var reader = RecordReader(opener: RecordOpener(cipher: openCipher))
            reader.append(bytes)
            do throws(USPError) {
                let records = try rtDrain(&reader)
                #expect(records.isEmpty, "forged a record from random bytes")
                #expect(bytes.count < RecordLayout.headerLength, "an 18-byte random header must not authenticate")
                if bytes.isEmpty {
                    try reader.checkEndOfInput()
                } else {
                    hsExpect(.recordTruncated) { () throws(USPError) in try reader.checkEndOfInput() }
                }
            } catch {
                #expect([USPError.Code.recordTampered, .recordReplayed, .recordReordered].contains(error.code), "\(error)")
            }
        }
    }

    @Test("property: any chunking of a valid stream yields the same plaintexts")
    func randomChunking() async throws {
        let (bytes, plaintexts, opener) = try Self.stream(count: 6, seed: 9)
        await propertyCheck(count: 40, input: Gen.int(in: 1...70_000).array(of: 1...40)) { chunkSizes in
            var reader = RecordReader(opener: opener)
            var got: [[UInt8]] = []
            var offset = 0, i = 0
            do throws(USPError) {
                while offset < bytes.count {
                    let n = min(chunkSizes[i % chunkSizes.count], bytes.count - offset)
                    reader.append(bytes[offset..<offset + n])
                    offset += n
                    i += 1
                    got += try rtDrain(&reader)
                }
                try reader.checkEndOfInput()
            } catch {
                Issue.record("\(error)")
            }
            #expect(got == plaintexts)
        }
    }
}

@Suite("Record rekey, limits and nonce exhaustion")
struct RecordKeyLifetimeTests {
    @Test("both sides rekey after a record and keep working")
    func rekey() throws {
        var (sealer, opener) = rtPair()
        for round in 0..<4 {
            for i in 0..<3 {
                let p = rtPlaintext(100 + i, tag: UInt64(round))
                #expect(try rtOpen(&opener, try rtSeal(&sealer, p)) == p)
            }
            try sealer.rekey()
            try opener.rekey()
        }
    }

    @Test("rekey really changes the key: after a rekey the old-key record fails, and vice versa")
    func rekeyChangesKey() throws {
        var (sealer, opener) = rtPair()
        _ = try rtOpen(&opener, try rtSeal(&sealer, [1]))
        // Receiver rekeyed, sender did not.
        var staleSealer = sealer
        var newOpener = opener
        try newOpener.rekey()
        hsExpect(.recordTampered) { () throws(USPError) in _ = try rtOpen(&newOpener, try rtSeal(&staleSealer, [2])) }
        // Sender rekeyed, receiver did not.
        var newSealer = sealer
        var staleOpener = opener
        try newSealer.rekey()
        hsExpect(.recordTampered) { () throws(USPError) in _ = try rtOpen(&staleOpener, try rtSeal(&newSealer, [2])) }
        // Both: fine.
        try sealer.rekey(); try opener.rekey()
        #expect(try rtOpen(&opener, try rtSeal(&sealer, [3])) == [3])
    }

    @Test("more than rekeyLimit bytes under one key throws rekeyOverdue; a rekey resets the count")
    func rekeyLimit() throws {
        var (sealer, opener) = rtPair(rekeyLimit: 3000)
        _ = try rtOpen(&opener, try rtSeal(&sealer, rtPlaintext(1000)))
        _ = try rtOpen(&opener, try rtSeal(&sealer, rtPlaintext(2000)))
        #expect(opener.bytesSinceRekey == 3000)
        var o = opener, s = sealer
        hsExpect(.rekeyOverdue) { () throws(USPError) in _ = try rtOpen(&o, try rtSeal(&s, [1])) }
        try sealer.rekey()
        try opener.rekey()
        _ = try rtOpen(&opener, try rtSeal(&sealer, rtPlaintext(3000)))
        hsExpect(.rekeyOverdue) { () throws(USPError) in _ = try rtOpen(&opener, try rtSeal(&sealer, rtPlaintext(1))) }
    }

    @Test("a sealer that runs out of nonces throws nonceExhausted and leaves the output buffer as it was")
    func sealerExhaustion() throws {
        // Nonces max-2 and max-1 are the last usable pair: one more record fits.
        var (sealer, opener) = rtPair(nonce: .max - 2)
        let p = rtPlaintext(40)
        #expect(try rtOpen(&opener, try rtSeal(&sealer, p)) == p)
        var out: [UInt8] = [7, 7, 7]
        for _ in 0..<3 {
            var failure: USPError?
            p.withUnsafeBytes { b in
                do throws(USPError) { try sealer.seal(b, appendingTo: &out) } catch { failure = error }
            }
            #expect(failure?.code == .nonceExhausted)
            #expect(out == [7, 7, 7])
        }
        // Only the header nonce left: the body cannot be sealed.
        var (halfSealer, _) = rtPair(nonce: .max - 1)
        hsExpect(.nonceExhausted) { () throws(USPError) in _ = try rtSeal(&halfSealer, p) }
        hsExpect(.nonceExhausted) { () throws(USPError) in _ = try rtSeal(&halfSealer, p) }
        // Rekeying does not give nonces back.
        try sealer.rekey()
        hsExpect(.nonceExhausted) { () throws(USPError) in _ = try rtSeal(&sealer, p) }
    }

    @Test("an opener that runs out of nonces throws nonceExhausted")
    func openerExhaustion() throws {
        // Opener at max: nothing can be opened.
        var (_, opener) = rtPair(nonce: .max)
        hsExpect(.nonceExhausted) { () throws(USPError) in _ = try rtOpen(&opener, [UInt8](repeating: 0, count: 40)) }

        // Header at max-1 opens; the body would need nonce max.
        var (raw, openCipher) = rtCipherPair(6, nonce: .max - 1)
        let header = try raw.encryptWithAd([], [0, 4])
        var o = RecordOpener(cipher: openCipher)
        hsExpect(.nonceExhausted) { () throws(USPError) in _ = try rtOpen(&o, header + [UInt8](repeating: 1, count: 20)) }
    }

    @Test("a bad header near the end of the nonce space is reported as tampering, not a crash",
          arguments: [UInt64.max - 1, .max - 2, .max - 3, .max - 4, .max - 10, .max - 64, .max - 65, .max - 66] as [UInt64])
    func diagnosisNearNonceEnd(nonce: UInt64) throws {
        var (_, opener) = rtPair(nonce: nonce)
        hsExpect(.recordTampered) { () throws(USPError) in _ = try rtOpen(&opener, [UInt8](repeating: 0xAB, count: 40)) }
        // A record that really is ahead is still named as reordered when it fits below the reserved nonce.
        if nonce <= .max - 4 {
            var (sealer, o) = rtPair(nonce: nonce)
            _ = try rtSeal(&sealer, [1])
            let second = try rtSeal(&sealer, [2])
            hsExpect(.recordReordered) { () throws(USPError) in _ = try rtOpen(&o, second) }
        }
    }
}

@Suite("PaddingPolicy")
struct RecordPaddingTests {
    @Test("none leaves the length alone")
    func none() {
        for n in [0, 1, 100, 65519] { #expect(PaddingPolicy.none.paddedLength(n, max: 65519) == n) }
        #expect(PaddingPolicy.none.frameCapacity(max: 4000) == 4000)
    }

    @Test("multiple rounds up to a multiple, capped at max")
    func multiple() {
        let p = PaddingPolicy.multiple(of: 256)
        #expect(p.paddedLength(1, max: 65519) == 256)
        #expect(p.paddedLength(256, max: 65519) == 256)
        #expect(p.paddedLength(257, max: 65519) == 512)
        #expect(p.paddedLength(65300, max: 65519) == 65519, "65536 is capped at max")
        #expect(p.paddedLength(1000, max: 1000) == 1000)
        #expect(p.paddedLength(900, max: 1000) == 1000)
        #expect(p.paddedLength(700, max: 1000) == 768)
        #expect(PaddingPolicy.multiple(of: 1).paddedLength(77, max: 1000) == 77)
        #expect(PaddingPolicy.multiple(of: 0).paddedLength(77, max: 1000) == 77)
        #expect(PaddingPolicy.multiple(of: -5).paddedLength(77, max: 1000) == 77)
        #expect(p.frameCapacity(max: 4000) == 4000)
    }

    @Test("fixed pads every record to n, capped at max, never below the frames")
    func fixed() {
        let p = PaddingPolicy.fixed(1200)
        #expect(p.paddedLength(1, max: 65519) == 1200)
        #expect(p.paddedLength(1200, max: 65519) == 1200)
        #expect(p.paddedLength(1, max: 1000) == 1000, "capped at the peer's max")
        #expect(p.paddedLength(1300, max: 65519) == 2400, "a larger frame gets a multiple of n")
        #expect(p.paddedLength(1300, max: 2000) == 2000, "capped at the peer's max, never below the frames")
        #expect(p.frameCapacity(max: 65519) == 1200)
        #expect(p.frameCapacity(max: 1000) == 1000)
    }

    @Test("property: padded length is within length...max and follows the policy")
    func property() async {
        await propertyCheck(count: 500, input: Gen.int(in: 1...65519), Gen.int(in: 1...65519), Gen.int(in: 2...70_000)) { a, b, n in
            let maxLen = max(a, b), length = min(a, b)
            let m = PaddingPolicy.multiple(of: n).paddedLength(length, max: maxLen)
            #expect(m >= length && m <= maxLen)
            #expect(m % n == 0 || m == maxLen)
            #expect(m - length < n)
            let f = PaddingPolicy.fixed(n)
            if length <= f.frameCapacity(max: maxLen) {
                #expect(f.paddedLength(length, max: maxLen) == min(n, maxLen))
            }
        }
    }
}
