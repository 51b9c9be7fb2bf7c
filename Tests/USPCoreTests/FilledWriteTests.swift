import Testing
@testable import USPCore
import USPTestSupport

/// Bytes written in place into the records being composed (`ClientSession.write(stream:upTo:fill:)`,
/// `WireWriter.writeFilled`): what `usp connect` uses to read stdin without a copy before the seal.
@Suite struct FilledWriteTests {
    /// A source that hands out `data` in the pieces `fill` asks for, at most `step` bytes per call.
    final class Source {
        let data: [UInt8]
        var offset = 0
        var calls: [Int] = []
        let step: Int
        init(_ data: [UInt8], step: Int = .max) { self.data = data; self.step = step }
        func fill(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
            calls.append(buffer.count)
            let n = min(buffer.count, data.count - offset, step)
            if n > 0 { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: data.withUnsafeBytes { $0 }[offset..<offset + n])) }
            offset += n
            return n
        }
    }

    @Test("writeFilled appends exactly what fill wrote, after what was there, and nothing when it writes 0")
    func wireWriter() {
        var w = WireWriter()
        w.writeUInt16(0xABCD)
        var offered = 0
        let wrote = w.writeFilled(upTo: 10) { b in
            offered = b.count
            for i in 0..<4 { b[i] = UInt8(i + 1) }
            return 4
        }
        #expect(wrote == 4 && offered == 10)
        #expect(w.bytes == [0xAB, 0xCD, 1, 2, 3, 4])
        #expect(w.writeFilled(upTo: 3) { _ in 0 } == 0)
        #expect(w.bytes == [0xAB, 0xCD, 1, 2, 3, 4])
        // Filling the whole room (the array then asks the sequence for more, and gets none).
        #expect(w.writeFilled(upTo: 5) { b in
            for i in 0..<b.count { b[i] = 9 }
            return b.count
        } == 5)
        #expect(w.bytes == [0xAB, 0xCD, 1, 2, 3, 4, 9, 9, 9, 9, 9])
        var called = false
        #expect(w.writeFilled(upTo: 0) { _ in called = true; return 0 } == 0)
        #expect(!called)
    }

    @Test("a filled write takes the server's credit and no more, and the server gets the bytes in order")
    func creditAndOrder() throws {
        var (pair, _) = try SessionStreamTests.withStreams(1)
        let window = Int(SessionConfiguration().streamWindow)
        let payload = SessionStreamTests.pattern(window + 70_000, seed: 3)
        let source = Source(payload)
        #expect(try pair.client.write(stream: 1, upTo: payload.count, fill: source.fill) == window)
        #expect(source.offset == window)
        // Each call offered at most one DATA frame's room.
        #expect(source.calls.allSatisfy { $0 >= 1 && $0 <= Frame.maxDataLength })
        // No credit left: fill is not called.
        let before = source.calls.count
        #expect(try pair.client.write(stream: 1, upTo: payload.count, fill: source.fill) == 0)
        #expect(source.calls.count == before)
        pair.pump()
        #expect(pair.serverData[1] == Array(payload[0..<window]))
        try pair.server.consumed(stream: 1, count: window)
        pair.pump()
        #expect(pair.clientSeen.last == .writable(1))
        #expect(try pair.client.write(stream: 1, upTo: payload.count, fill: source.fill) == 70_000)
        pair.pump()
        #expect(pair.serverData[1] == payload)
    }

    @Test("a short fill ends the call: what it wrote goes out, a DATA frame with its real length")
    func shortFill() throws {
        var (pair, _) = try SessionStreamTests.withStreams(1)
        let payload = SessionStreamTests.pattern(100_000, seed: 5)
        let source = Source(payload, step: 1234)
        #expect(try pair.client.write(stream: 1, upTo: 100_000, fill: source.fill) == 1234)
        #expect(source.calls.count == 1)
        // A source with nothing now: nothing is sent, not even an empty DATA frame.
        let empty = Source([])
        #expect(try pair.client.write(stream: 1, upTo: 100, fill: empty.fill) == 0)
        #expect(empty.calls.count == 1)
        let recordsBefore = try pair.clientRecords().count
        pair.pump()
        let sent = try pair.clientRecords().dropFirst(recordsBefore)
        #expect(sent.count == 1)
        #expect(sent.first?.frames == [.data(stream: 1, data: Array(payload[0..<1234]))])
        #expect(pair.serverData[1] == Array(payload[0..<1234]))
    }
}
