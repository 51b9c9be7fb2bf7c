import Testing
import USPCore
import USPTestSupport

@Suite struct StreamLimitsTests {
    @Test func defaults() {
        let l = StreamLimits()
        #expect(l.maxStreams == 100)
        #expect(l.initialWindow == 262_144)
        #expect(l.maxControlFrames == 200)
        #expect(l.isValid)
        #expect(StreamLimits.minInitialWindow == 16384)
        #expect(StreamLimits.maxWindow == 2_147_483_647)
    }

    @Test func validity() {
        #expect(StreamLimits(initialWindow: 16384).isValid)
        #expect(!StreamLimits(initialWindow: 16383).isValid)
        #expect(StreamLimits(initialWindow: 2_147_483_647).isValid)
        #expect(!StreamLimits(initialWindow: 2_147_483_648).isValid)
        #expect(!StreamLimits(maxStreams: 0).isValid)
        #expect(StreamLimits(maxStreams: 1).isValid)
        #expect(!StreamLimits(maxControlFrames: -1).isValid)
        #expect(StreamLimits(maxControlFrames: 0).isValid)
    }

    @Test func tableUsesBothWindows() throws {
        let t = try StreamTable(role: .client, limits: StreamLimits(initialWindow: 30000), peerInitialWindow: 50000)
        #expect(t.localInitialWindow == 30000)
        #expect(t.peerInitialWindow == 50000)
    }

    @Test func peerInitialWindowOutOfRange() {
        #expect(errorCode { try StreamTable(role: .client, peerInitialWindow: 16383) } == .invalidHello)
        #expect(errorCode { try StreamTable(role: .server, peerInitialWindow: 2_147_483_648) } == .invalidHello)
        #expect(errorCode { try StreamTable(role: .server, peerInitialWindow: 0) } == .invalidHello)
        #expect(errorCode { try StreamTable(role: .server, peerInitialWindow: 16384) } == nil)
        #expect(errorCode { try StreamTable(role: .server, peerInitialWindow: 2_147_483_647) } == nil)
    }

    @Test func maxStreamsOne() throws {
        var server = try makeServer(StreamLimits(maxStreams: 1))
        #expect(try server.peerOpened(1) == .pending(localID: 1))
        #expect(try server.peerOpened(2) == .refuse(.streamLimit))
        var client = try makeClient(StreamLimits(maxStreams: 1))
        _ = try client.open()
        #expect(errorCode { try client.open() } == .streamLimit)
    }

    @Test func smallestWindowIsEnforced() throws {
        var p = try Pair(serverLimits: StreamLimits(initialWindow: 16384))
        _ = try p.server.peerData(peerID: p.clientID, count: 16384)
        #expect(errorCode { try p.server.peerData(peerID: p.clientID, count: 1) } == .flowControl)
    }

    // MARK: Flood guard

    @Test func controlFloodDefaultLimit() throws {
        var server = try makeServer()
        for _ in 0..<200 { try server.noteControlFrame() }
        #expect(server.controlFramesSinceProgress == 200)
        #expect(errorCode { try server.noteControlFrame() } == .controlFlood)
    }

    @Test func progressResetsTheCount() throws {
        var p = try Pair(serverLimits: StreamLimits(maxControlFrames: 3))
        for _ in 0..<3 { try p.server.noteControlFrame() }
        _ = try p.server.peerData(peerID: p.clientID, count: 1)  // DATA is progress
        #expect(p.server.controlFramesSinceProgress == 0)
        for _ in 0..<3 { try p.server.noteControlFrame() }
        p.server.noteProgress()  // a MESSAGE
        for _ in 0..<3 { try p.server.noteControlFrame() }
        #expect(errorCode { try p.server.noteControlFrame() } == .controlFlood)
    }

    @Test func ignoredDataIsNotProgress() throws {
        var p = try Pair(serverLimits: StreamLimits(maxControlFrames: 2))
        p.server.reset(p.serverID)
        try p.server.noteControlFrame()
        try p.server.noteControlFrame()
        #expect(try p.server.peerData(peerID: p.clientID, count: 5) == .ignored)
        #expect(errorCode { try p.server.noteControlFrame() } == .controlFlood)
    }

    @Test func refusedOpensCountAsControlFrames() throws {
        var server = try makeServer(StreamLimits(maxStreams: 1, maxControlFrames: 5))
        _ = try server.peerOpened(1)
        for id in UInt32(2)...6 { #expect(try server.peerOpened(id) == .refuse(.streamLimit)) }
        #expect(server.refusedCount == 5)
        #expect(errorCode { try server.peerOpened(7) } == .controlFlood)
    }

    @Test func resetsCountAsControlFrames() throws {
        var server = try makeServer(StreamLimits(maxControlFrames: 4))
        for id in UInt32(1)...4 {
            _ = try server.peerOpened(id)
            #expect(try server.peerReset(peerID: id, code: 0) == .reset(localID: id, code: 0))
        }
        _ = try server.peerOpened(5)
        #expect(errorCode { try server.peerReset(peerID: 5, code: 0) } == .controlFlood)
    }

    @Test func zeroControlFramesAllowed() throws {
        var server = try makeServer(StreamLimits(maxControlFrames: 0))
        #expect(errorCode { try server.noteControlFrame() } == .controlFlood)
    }
}
