import Testing
@testable import USPCore
import USPTestSupport

/// Datagrams framed on a stream (docs/PROTOCOL.md §7.5): whole datagrams out, however the bytes
/// were cut on the way.
@Suite struct DatagramFramingTests {
    static func framed(_ datagrams: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for d in datagrams { d.withUnsafeBytes { DatagramFraming.append($0, to: &out) } }
        return out
    }

    @Test func framingIsALengthPrefix() {
        #expect(Self.framed([[0xAB, 0xCD, 0xEF]]) == [0x00, 0x03, 0xAB, 0xCD, 0xEF])
        #expect(Self.framed([[]]) == [0x00, 0x00], "an empty datagram is a datagram too")
        #expect(DatagramFraming.framedLength(65535) == 65537)
    }

    @Test(arguments: [1, 2, 3, 7, 100, 70_000])
    func anyCuttingGivesTheSameDatagrams(piece: Int) {
        let rng = SeededRandom(seed: UInt64(piece))
        let datagrams: [[UInt8]] = (0..<40).map { i in rng.bytes(i == 5 ? 0 : (i == 9 ? 65535 : Int(rng.bytes(2).withUnsafeBytes { $0.load(as: UInt16.self) } % 1500))) }
        let wire = Self.framed(datagrams)
        var r = DatagramReassembler()
        var got: [[UInt8]] = []
        var offset = 0
        while offset < wire.count {
            let end = min(wire.count, offset + piece)
            wire[offset..<end].withUnsafeBytes { r.feed($0) { got.append(Array($0)) } }
            offset = end
        }
        #expect(got == datagrams)
        #expect(r.partialByteCount == 0)
    }

    @Test func aPartialDatagramWaits() {
        var r = DatagramReassembler()
        var got: [[UInt8]] = []
        ([0x00, 0x04, 0x01] as [UInt8]).withUnsafeBytes { r.feed($0) { got.append(Array($0)) } }
        #expect(got.isEmpty && r.partialByteCount == 3)
        ([0x02, 0x03, 0x04, 0x00] as [UInt8]).withUnsafeBytes { r.feed($0) { got.append(Array($0)) } }
        #expect(got == [[1, 2, 3, 4]] && r.partialByteCount == 1)
    }
}
