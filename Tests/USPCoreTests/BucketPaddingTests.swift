import Testing
@testable import USPCore
import USPTestSupport

/// The default padding (docs/PROTOCOL.md §4, `buckets`): every record is one of eleven sizes,
/// every record with a session message at least 1024, and bulk data costs a few percent.
@Suite struct BucketPaddingTests {
    static let sizes = Set(PaddingPolicy.bucketSizes + [RecordLayout.maxPlaintext])

    @Test func everyRecordIsABucketAndMessagesAreAtLeast1024() throws {
        var (pair, _) = try SessionStreamTests.withStreams(1)
        for n in [1, 57, 58, 500, 1000, 4096, 16_384, 40_000, 65_536, 100_000] {
            try pair.serverWrite(1, SessionStreamTests.pattern(n))
            try pair.clientWrite(1, SessionStreamTests.pattern(n))
        }
        for records in [try pair.serverRecords(), try pair.clientRecords()] {
            let odd = records.filter { !Self.sizes.contains($0.length) }
            #expect(odd.isEmpty, "\(odd.map(\.length))")
            for r in records where r.frames.contains(where: { if case .message = $0 { true } else { false } }) {
                #expect(r.length >= 1024, "a record with a session message is \(r.length) bytes")
            }
        }
    }

    /// A 16 KiB write fills one 16416-byte record; 20000 bytes are cut at that bucket and the
    /// rest goes in smaller records, never in a 32800-byte record a third padding.
    @Test func aPowerOfTwoWriteIsOneRecordAndASpillIsCut() throws {
        var (pair, _) = try SessionStreamTests.withStreams(1)
        var before = try pair.clientRecords().count
        #expect(try pair.clientWrite(1, SessionStreamTests.pattern(16_384)) == 16_384)
        #expect(try pair.clientRecords().dropFirst(before).map(\.length) == [16_416])
        before = try pair.clientRecords().count
        #expect(try pair.clientWrite(1, SessionStreamTests.pattern(20_000)) == 20_000)
        let cut = try pair.clientRecords().dropFirst(before).map(\.length)
        #expect(cut.first == 16_416 && cut.count > 1 && cut.reduce(0, +) < 20_000 + 20_000 / 25, "\(cut)")
        #expect(pair.serverData[1] == SessionStreamTests.pattern(16_384) + SessionStreamTests.pattern(20_000))
    }

    /// What padding costs in bytes: at most 3 % for bulk (writes of a power of two, as programs
    /// and socket reads make them, and anything from 32 KiB up); at most 10 % for other sizes
    /// (1500 bytes: 8 %).
    @Test(arguments: [1024, 1500, 4096, 8192, 10_000, 16_384, 32_768, 50_000, 65_536, 131_072])
    func bulkOverheadIsSmall(write: Int) throws {
        var padded = SessionConfiguration(), plain = SessionConfiguration()
        padded.padding = .buckets
        plain.padding = .none
        func wire(_ config: SessionConfiguration) throws -> Int {
            var (pair, _) = try SessionStreamTests.withStreams(1, client: config, server: config)
            let start = pair.toServerWire.count
            for _ in 0..<64 { try pair.clientWrite(1, SessionStreamTests.pattern(write)) }
            return pair.toServerWire.count - start
        }
        let p = try wire(padded), n = try wire(plain)
        let overhead = Double(p - n) / Double(n)
        print(String(format: "bucket padding, %6d-byte writes: +%.2f %% on the wire", write, overhead * 100))
        let bound = write & (write - 1) == 0 || write >= 32_768 ? 0.03 : 0.10
        #expect(overhead <= bound, "\(write)-byte writes: \(p) bytes padded, \(n) not: +\(overhead * 100) %")
    }
}
