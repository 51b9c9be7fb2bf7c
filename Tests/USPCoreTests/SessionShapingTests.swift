import Testing
@testable import USPCore
import USPTestSupport

/// Traffic shaping (docs/PROTOCOL.md §4.1): under a profile each side sends exactly one record of
/// one size per tick, whatever the application does, and data keeps flowing.
@Suite struct SessionShapingTests {
    static let profile = ShapingProfile.interactive

    /// An established pair with stream 1 open and the server shaping (the client learns it from
    /// the SHAPE frame, delivered by one tick).
    static func shapedPair() throws -> SessionPair {
        var (pair, _) = try SessionStreamTests.withStreams(1)
        try pair.server.startShaping(profile)
        #expect(pair.server.outboundByteCount == 0, "nothing leaves between ticks")
        _ = try tick(&pair)
        #expect(pair.clientSeen.contains(.shaping(profile)))
        #expect(pair.client.shaping == profile)
        return pair
    }

    /// One tick on both sides; returns the bytes each side let go (to the client, to the server).
    @discardableResult
    static func tick(_ pair: inout SessionPair) throws -> (toClient: Int, toServer: Int) {
        var serverWritable: [UInt32] = []
        try pair.server.tick { if case .streamWritable(let s) = $0 { serverWritable.append(s) } }
        pair.serverSeen += serverWritable.map { .writable($0) }
        let toClient = pair.server.drainOutbound { Array($0) }
        pair.deliverToClient(toClient)
        var toServer: [UInt8] = []
        if pair.client.shaping != nil {
            var seen: [Seen] = []
            try pair.client.tick { seen.append(Seen($0)) }
            pair.clientSeen += seen
            toServer = pair.client.drainOutbound { Array($0) }
            pair.deliverToServer(toServer)
        }
        return (toClient.count, toServer.count)
    }

    @Test func everyTickCarriesExactlyOneRecordOfOneSizeEachWay() throws {
        var pair = try Self.shapedPair()
        let wire = Self.profile.wireRecordLength
        var sizes: [(Int, Int)] = []
        for t in 0..<40 {
            if t % 7 == 3 { #expect(try pair.serverWrite(1, [UInt8(t)]) == 1) }
            if t % 5 == 1 { #expect(try pair.clientWrite(1, [UInt8(t), 1, 2]) == 3) }
            #expect(pair.server.outboundByteCount == 0 && pair.client.outboundByteCount == 0, "writes leave only on ticks")
            sizes.append(try Self.tick(&pair))
        }
        let unequal = sizes.filter { $0.0 != wire || $0.1 != wire }
        #expect(unequal.isEmpty, "\(sizes)")
        // Every byte arrived, in order.
        let toClient: [UInt8] = (0..<40).filter { $0 % 7 == 3 }.map { UInt8($0) }
        let toServer: [UInt8] = (0..<40).filter { $0 % 5 == 1 }.flatMap { (t: Int) -> [UInt8] in [UInt8(t), 1, 2] }
        #expect(pair.clientData[1] == toClient)
        #expect(pair.serverData[1] == toServer)
        // Each record on the wire is 512 bytes of plaintext; the idle ones are padding only.
        let records = try pair.serverRecords().suffix(40)
        #expect(records.allSatisfy { $0.length == Self.profile.recordLength })
        #expect(records.filter { $0.frames.isEmpty }.count >= 30, "cover records fill the idle ticks")
        #expect(try pair.clientRecords().suffix(38).allSatisfy { $0.length == Self.profile.recordLength })
    }

    /// An interactive session and a bulk transfer at the same rate: the same sizes, tick for tick.
    @Test func keystrokesAndBulkLookTheSame() throws {
        func run(_ bulk: Bool) throws -> [Int] {
            var pair = try Self.shapedPair()
            var wire: [Int] = []
            let chunk = SessionStreamTests.pattern(100_000)
            var sent = 0
            for t in 0..<60 {
                if bulk {
                    sent += try chunk[sent...].withUnsafeBytes { try pair.server.write(stream: 1, $0) }
                } else if t % 9 == 0 {
                    _ = try [UInt8(ascii: "k")].withUnsafeBytes { try pair.server.write(stream: 1, $0) }
                }
                wire.append(try Self.tick(&pair).toClient)
            }
            if bulk {
                #expect(sent > 20 * 400 && pair.clientData[1] == Array(chunk[0..<(pair.clientData[1]?.count ?? 0)]))
            }
            return wire
        }
        let interactive = try run(false), bulk = try run(true)
        #expect(interactive == bulk)
        #expect(Set(bulk) == [Self.profile.wireRecordLength])
    }

    /// A write takes only what fits in eight ticks; the rest waits, and the stream is told when
    /// ticks have made room.
    @Test func writesWaitForTicksAndAreToldWhenToGoOn() throws {
        var pair = try Self.shapedPair()
        let payload = SessionStreamTests.pattern(50_000)
        let first = try payload.withUnsafeBytes { try pair.server.write(stream: 1, $0) }
        #expect(first > 0 && first <= Self.profile.backlogLimit, "took \(first)")
        #expect(try payload[first...].withUnsafeBytes { try pair.server.write(stream: 1, $0) } == 0)
        var ticks = 0
        while !pair.serverSeen.contains(.writable(1)) {
            try Self.tick(&pair)
            ticks += 1
            try #require(ticks < 20)
        }
        #expect(ticks >= 4, "room comes back only as ticks drain the backlog")
        #expect(try payload[first...].withUnsafeBytes { try pair.server.write(stream: 1, $0) } > 0)
    }

    @Test func stoppingSendsWhatWaitsAndTheClientStopsToo() throws {
        var pair = try Self.shapedPair()
        _ = try pair.serverWrite(1, SessionStreamTests.pattern(3000))
        try pair.server.stopShaping { _ in }
        #expect(pair.server.outboundByteCount > 3000, "what waited leaves at once")
        pair.pump()
        #expect(pair.clientData[1]?.count == 3000)
        #expect(pair.clientSeen.last == .shaping(nil))
        #expect(pair.client.shaping == nil && pair.server.shaping == nil)
        // Back to buckets: a one-byte write is one 96-byte record, sent at once.
        _ = try pair.clientWrite(1, [7])
        #expect(try pair.clientRecords().last?.length == 96)
    }

    @Test func closingDoesNotWaitForATick() throws {
        var pair = try Self.shapedPair()
        pair.server.close(code: .shuttingDown) { _ in }
        #expect(pair.server.outboundByteCount > 0)
        pair.pump()
        #expect(pair.clientSeen.last == .closed(.shuttingDown))
    }

    @Test func aClientMayNotShape() throws {
        var (pair, _) = try SessionStreamTests.withStreams(1)
        try pair.clientSends([.shape(tickMilliseconds: 20, recordLength: 512)])
        #expect(pair.serverSeen.last == .closed(.unexpectedMessage))
    }

    @Test(arguments: [
        ([0x0D, 0x00, 0x03, 0x00, 0x14, 0x02], "body must be 4 bytes, has 3"),
        ([0x0D, 0x00, 0x04, 0x00, 0x00, 0x02, 0x00], "tick 0 (stop) with record length 512, not 0"),
        ([0x0D, 0x00, 0x04, 0x00, 0x14, 0x00, 0x3F], "record length 63 below 64"),
        ([0x0D, 0x00, 0x04, 0x27, 0x11, 0x02, 0x00], "tick 10001 ms above 10000"),
    ] as [([UInt8], String)])
    func malformedShapeFrames(bytes: [UInt8], detail: String) {
        #expect(throws: USPError.self) { try Frame.decodeAll(bytes) }
        do { _ = try Frame.decodeAll(bytes) } catch {
            #expect(error.code == .malformedFrame)
            #expect(error.detail.contains(detail), "\(error.detail)")
        }
    }

    @Test func shapeFrameRoundTrips() throws {
        let frame = Frame.shape(tickMilliseconds: 20, recordLength: 512)
        #expect(frame.encoded == [0x0D, 0x00, 0x04, 0x00, 0x14, 0x02, 0x00])
        #expect(try Frame.decodeAll(frame.encoded) == [frame])
        #expect(try Frame.decodeAll(Frame.shape(tickMilliseconds: 0, recordLength: 0).encoded) == [.shape(tickMilliseconds: 0, recordLength: 0)])
    }

    @Test func aShapedSessionIsNotHandedOff() throws {
        var pair = try Self.shapedPair()
        #expect(throws: USPError.self) { try pair.server.beginHandoff(undeliveredData: []) }
    }
}
