import Testing
@testable import USPCore
import USPTestSupport

/// Decodes a record, returning the error instead of throwing it.
func frameDecodeError(_ bytes: [UInt8]) -> USPError? {
    do {
        _ = try Frame.decodeAll(bytes)
        return nil
    } catch {
        return error
    }
}

func encodeRecord(_ frames: [Frame]) -> [UInt8] {
    var w = WireWriter()
    for f in frames { f.encode(into: &w) }
    return w.bytes
}

let everyFrameType: [Frame] = [
    .padding(length: 5),
    .message(kind: 3, json: Array(#"{"type":"hello"}"#.utf8)),
    .message(kind: 0, json: []),
    .open(stream: 1, session: Array(#"{"index":"x"}"#.utf8)),
    .open(stream: 0xFFFF_FFFF, session: []),
    .accept(opener: 7, acceptor: 0x0102_0304),
    .reject(opener: 9, code: USPError.Code.streamLimit.wireValue, message: "too many streams ✓"),
    .reject(opener: 9, code: 0, message: ""),
    .data(stream: 42, data: [0, 1, 2, 255]),
    .window(stream: 3, increment: 1),
    .window(stream: 3, increment: 0xFFFF_FFFF),
    .fin(stream: 11),
    .reset(stream: 12, code: USPError.Code.streamClosed.wireValue),
    .rekey,
    .ping(0x0102_0304_0506_0708),
    .pong(0xFFFF_FFFF_FFFF_FFFF),
    .close(code: USPError.Code.shuttingDown.wireValue, reason: "bye 👋"),
    .close(code: 0, reason: ""),
    .shape(tickMilliseconds: 20, recordLength: 512),
    .shape(tickMilliseconds: 0, recordLength: 0),
]

@Suite struct FrameCodecTests {
    @Test func constants() {
        #expect(Frame.dataHeaderLength == 7)
        #expect(Frame.maxBodyLength == 65535)
        #expect(Frame.maxDataLength == 65531)
        #expect(FrameType.allCases.map(\.rawValue) == Array(0x00...0x0D))
    }

    @Test(arguments: everyFrameType)
    func roundTrip(_ frame: Frame) throws {
        let bytes = frame.encoded
        #expect(bytes.count == frame.encodedLength)
        #expect(bytes.first == frame.type.rawValue)
        #expect(try Frame.decodeAll(bytes) == [frame])
        if case .padding = frame {} else {
            #expect(Int(bytes[1]) << 8 | Int(bytes[2]) == frame.bodyLength)
        }
    }

    @Test func everyTypeIsCovered() {
        #expect(Set(everyFrameType.map(\.type)) == Set(FrameType.allCases))
    }

    @Test func exactDataBytes() {
        let frame = Frame.data(stream: 0x0102_0304, data: [0xAA, 0xBB, 0xCC])
        let expected: [UInt8] = [0x05, 0x00, 0x07, 0x01, 0x02, 0x03, 0x04, 0xAA, 0xBB, 0xCC]
        #expect(frame.encoded == expected)

        var w = WireWriter()
        FrameWriter.writeDataHeader(stream: 0x0102_0304, count: 3, into: &w)
        #expect(w.bytes == Array(expected.prefix(7)))

        var raw = [UInt8](repeating: 0xEE, count: 12)
        let payloadAt = raw.withUnsafeMutableBytes {
            FrameWriter.writeDataHeader(stream: 0x0102_0304, count: 3, into: $0, at: 2)
        }
        #expect(payloadAt == 9)
        #expect(Array(raw[2..<9]) == Array(expected.prefix(7)))
        #expect(raw[0] == 0xEE && raw[1] == 0xEE && raw[9] == 0xEE)
    }

    @Test func exactOpenBytes() {
        let frame = Frame.open(stream: 1, session: Array(#"{"a":1}"#.utf8))
        let expected: [UInt8] = [0x02, 0x00, 0x0B, 0x00, 0x00, 0x00, 0x01] + Array(#"{"a":1}"#.utf8)
        #expect(frame.encoded == expected)
    }

    @Test func exactSmallFrameBytes() {
        #expect(Frame.accept(opener: 1, acceptor: 2).encoded == [0x03, 0, 8, 0, 0, 0, 1, 0, 0, 0, 2])
        #expect(Frame.reject(opener: 1, code: 304, message: "x").encoded == [0x04, 0, 7, 0, 0, 0, 1, 0x01, 0x30, 0x78])
        #expect(Frame.window(stream: 5, increment: 65536).encoded == [0x06, 0, 8, 0, 0, 0, 5, 0, 1, 0, 0])
        #expect(Frame.fin(stream: 5).encoded == [0x07, 0, 4, 0, 0, 0, 5])
        #expect(Frame.reset(stream: 5, code: 2).encoded == [0x08, 0, 6, 0, 0, 0, 5, 0, 2])
        #expect(Frame.rekey.encoded == [0x09, 0, 0])
        #expect(Frame.ping(1).encoded == [0x0A, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1])
        #expect(Frame.close(code: 601, reason: "").encoded == [0x0C, 0, 2, 0x02, 0x59])
        #expect(Frame.padding(length: 3).encoded == [0, 0, 0])
        #expect(Frame.message(kind: 2, json: [0x7B, 0x7D]).encoded == [0x01, 0, 3, 2, 0x7B, 0x7D])
    }

    @Test func multipleFramesAndPaddingInOneRecord() throws {
        let frames: [Frame] = [
            .open(stream: 1, session: Array("{}".utf8)),
            .data(stream: 1, data: Array("GET /".utf8)),
            .fin(stream: 1),
            .ping(99),
            .window(stream: 4, increment: 131072),
            .padding(length: 23),
        ]
        let record = encodeRecord(frames)
        #expect(record.count == frames.map(\.encodedLength).reduce(0, +))
        #expect(try Frame.decodeAll(record) == frames)

        // The same through the view reader, with offsets.
        try record.withUnsafeBytes { buf in
            var reader = FrameReader(buf)
            var offsets: [Int] = []
            var types: [FrameType] = []
            while true {
                offsets.append(reader.offset)
                guard let view = try reader.next() else { break }
                types.append(view.type)
            }
            #expect(types == frames.map(\.type))
            #expect(offsets.dropLast().elementsEqual(
                frames.indices.map { i in frames[..<i].map(\.encodedLength).reduce(0, +) }))
            #expect(reader.isAtEnd)
            #expect(try reader.next() == nil)
        }
    }

    @Test func paddingOnlyAndShortestPadding() throws {
        #expect(try Frame.decodeAll([0]) == [.padding(length: 1)])
        #expect(try Frame.decodeAll([UInt8](repeating: 0, count: 100)) == [.padding(length: 100)])
        #expect(try Frame.decodeAll([0x07, 0, 4, 0, 0, 0, 1, 0]) == [.fin(stream: 1), .padding(length: 1)])
        #expect(try Frame.decodeAll([]) == [])
    }

    @Test func viewsConvertToOwningFrames() throws {
        for frame in everyFrameType {
            try frame.encoded.withUnsafeBytes { buf in
                var reader = FrameReader(buf)
                let view = try #require(try reader.next())
                #expect(view.type == frame.type)
                #expect(Frame(view) == frame)
            }
        }
    }

    /// FrameReader over a full record of DATA frames written with the fast-path header writer:
    /// every payload is a slice of the record itself, not a copy.
    @Test func readerOverRecordOfDataFrames() throws {
        let recordSize = 65519
        var record = [UInt8](repeating: 0, count: recordSize)
        var expected: [(stream: UInt32, start: Int, count: Int)] = []
        record.withUnsafeMutableBytes { buf in
            var offset = 0
            var stream: UInt32 = 1
            while recordSize - offset > Frame.dataHeaderLength {
                let count = min(Int(stream) * 37 % 1400 + 1, recordSize - offset - Frame.dataHeaderLength)
                let start = FrameWriter.writeDataHeader(stream: stream, count: count, into: buf, at: offset)
                for i in 0..<count { buf[start + i] = UInt8(truncatingIfNeeded: Int(stream) &+ i) }
                expected.append((stream, start, count))
                offset = start + count
                stream += 1
            }
            // The tail that cannot hold a DATA frame is padding (already zero).
        }
        try record.withUnsafeBytes { buf in
            var reader = FrameReader(buf)
            var index = 0
            var sawPadding = false
            while let view = try reader.next() {
                switch view {
                case .data(let stream, let data):
                    let e = expected[index]
                    #expect(stream == e.stream)
                    #expect(data.count == e.count)
                    #expect(data.baseAddress == buf.baseAddress! + e.start)
                    #expect(data.first == UInt8(truncatingIfNeeded: Int(stream)))
                    index += 1
                case .padding:
                    sawPadding = true
                default:
                    Issue.record("unexpected \(view.type)")
                }
            }
            #expect(index == expected.count)
            #expect(sawPadding == (expected.last.map { $0.start + $0.count } != recordSize))
        }
    }

    @Test func largestDataFrameRoundTrips() throws {
        let data = [UInt8](repeating: 0x5A, count: Frame.maxDataLength)
        let frame = Frame.data(stream: 1, data: data)
        let bytes = frame.encoded
        #expect(bytes[1] == 0xFF && bytes[2] == 0xFF)
        #expect(try Frame.decodeAll(bytes) == [frame])
    }

    @Test func readerStopsAfterError() throws {
        let record: [UInt8] = [0x07, 0, 4, 0, 0, 0, 1, 0x0E, 0x07, 0, 4, 0, 0, 0, 2]
        try record.withUnsafeBytes { (buf: UnsafeRawBufferPointer) throws in
            var reader = FrameReader(buf)
            #expect(try reader.next() != nil)
            #expect(throws: USPError(.unknownFrameType)) { try reader.next() }
            #expect(reader.isAtEnd)
            #expect(try reader.next() == nil)
        }
    }
}
