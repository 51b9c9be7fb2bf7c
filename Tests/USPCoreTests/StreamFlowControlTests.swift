import PropertyBased
import Testing
import USPCore

@Suite struct StreamFlowControlTests {
    @Test func sendCreditStartsAtPeerWindowAndGrowsWithWindow() throws {
        var p = try Pair(serverLimits: StreamLimits(initialWindow: 40000))
        #expect(p.client.sendCredit(p.clientID) == 40000)
        p.client.consumeSendCredit(p.clientID, 30000)
        #expect(p.client.sendCredit(p.clientID) == 10000)
        #expect(try p.client.peerWindow(peerID: p.serverID, increment: 5000) == .credit(localID: p.clientID, available: 15000))
        #expect(p.client.sendCredit(p.clientID) == 15000)
    }

    @Test func exceedingCreditIsFlowControlViolation() throws {
        var p = try Pair(serverLimits: StreamLimits(initialWindow: 16384))
        #expect(try p.server.peerData(peerID: p.clientID, count: 16000) == .data(localID: p.serverID, count: 16000))
        #expect(errorCode { try p.server.peerData(peerID: p.clientID, count: 385) } == .flowControl)
        #expect(try p.server.peerData(peerID: p.clientID, count: 384) == .data(localID: p.serverID, count: 384))
        #expect(errorCode { try p.server.peerData(peerID: p.clientID, count: 1) } == .flowControl)
        #expect(p.server.state(of: p.serverID)?.buffered == 16384)
    }

    @Test func windowBatchingAtHalfTheWindow() throws {
        var p = try Pair(serverLimits: StreamLimits(initialWindow: 20000))
        _ = try p.server.peerData(peerID: p.clientID, count: 20000)
        #expect(p.server.consumed(p.serverID, 4000) == nil)
        #expect(p.server.consumed(p.serverID, 5999) == nil)
        #expect(p.server.state(of: p.serverID)?.unannounced == 9999)
        #expect(p.server.consumed(p.serverID, 1) == 10000)
        let s = try #require(p.server.state(of: p.serverID))
        #expect(s.unannounced == 0 && s.receiveCredit == 10000 && s.buffered == 10000)
        #expect(p.server.consumed(p.serverID, 0) == nil)
        #expect(p.server.consumed(p.serverID, 10000) == 10000)
        #expect(p.server.state(of: p.serverID)?.receiveCredit == 20000)
    }

    @Test func windowOverflow() throws {
        var p = try Pair(serverLimits: StreamLimits(initialWindow: 65536))
        let room = UInt32(StreamLimits.maxWindow - 65536)
        #expect(try p.client.peerWindow(peerID: p.serverID, increment: room) == .credit(localID: p.clientID, available: StreamLimits.maxWindow))
        #expect(errorCode { try p.client.peerWindow(peerID: p.serverID, increment: 1) } == .windowOverflow)

        var q = try Pair()
        #expect(errorCode { try q.client.peerWindow(peerID: q.serverID, increment: UInt32.max) } == .windowOverflow)
    }

    /// One stream the receiver never reads stalls at its window; another stream on the same
    /// tables keeps moving many windows' worth of data.
    @Test func stalledStreamDoesNotBlockAnother() throws {
        let window = 16384
        var p = try Pair(serverLimits: StreamLimits(initialWindow: window))
        let stalled = (client: p.clientID, server: p.serverID)
        let (liveClient, liveServer) = try p.openStream()

        // Fill the stalled stream's window; the server application never consumes it.
        _ = try p.server.peerData(peerID: stalled.client, count: p.client.sendCredit(stalled.client))
        p.client.consumeSendCredit(stalled.client, window)
        #expect(p.client.sendCredit(stalled.client) == 0)

        var delivered = 0
        for round in 0..<200 {
            let n = min(p.client.sendCredit(liveClient), 1000 + round * 37)
            #expect(n > 0, "live stream starved in round \(round)")
            p.client.consumeSendCredit(liveClient, n)
            #expect(try p.server.peerData(peerID: liveClient, count: n) == .data(localID: liveServer, count: n))
            delivered += n
            if let increment = p.server.consumed(liveServer, n) {
                _ = try p.client.peerWindow(peerID: liveServer, increment: increment)
            }
        }
        #expect(delivered > 20 * window)
        #expect(p.client.sendCredit(stalled.client) == 0)
        #expect(p.server.state(of: stalled.server)?.buffered == window)
        // The stalled stream is still bounded: one more byte is a violation.
        #expect(errorCode { try p.server.peerData(peerID: stalled.client, count: 1) } == .flowControl)
    }

    /// Random sends, deliveries, consumes and delayed WINDOWs between a client and a server
    /// over several streams: buffered bytes never exceed the window, receive accounting is
    /// exact, and the sender's credit plus WINDOWs in flight always equals the receiver's credit.
    @Test func randomizedFlowControlInvariant() async throws {
        let opsGen = Generator<[UInt64], Shrink.None<[UInt64]>>(run: { rng in
            (0..<Int.random(in: 50...400, using: &rng)).map { _ in rng.next() }
        })
        await propertyCheck(count: 200, input: opsGen, Gen.int(in: 16384...70000)) { ops, window in
            var p = try Pair(serverLimits: StreamLimits(initialWindow: window))
            var ids = [(p.clientID, p.serverID)]
            ids.append(try p.openStream())
            ids.append(try p.openStream())
            var pendingWindows: [(stream: Int, increment: UInt32)] = []

            for op in ops {
                let k = Int(op % 3)
                let (c, s) = ids[k]
                let amount = Int((op >> 8) % UInt64(window)) + 1
                switch (op >> 40) % 4 {
                case 0, 1:  // send as much as credit allows, and deliver
                    let n = min(amount, p.client.sendCredit(c))
                    if n > 0 {
                        p.client.consumeSendCredit(c, n)
                        #expect(try p.server.peerData(peerID: c, count: n) == .data(localID: s, count: n))
                    } else {
                        // A sender that ignored its credit would be caught.
                        let over = p.server.state(of: s)!.receiveCredit + 1
                        #expect(errorCode { try p.server.peerData(peerID: c, count: over) } == .flowControl)
                    }
                case 2:  // the application reads some
                    let buffered = p.server.state(of: s)!.buffered
                    if let increment = p.server.consumed(s, min(amount, buffered)) {
                        pendingWindows.append((k, increment))
                    }
                default:  // a WINDOW arrives
                    if !pendingWindows.isEmpty {
                        let w = pendingWindows.removeFirst()
                        let (wc, ws) = ids[w.stream]
                        let before = p.client.sendCredit(wc)
                        #expect(try p.client.peerWindow(peerID: ws, increment: w.increment)
                            == .credit(localID: wc, available: before + Int(w.increment)))
                    }
                }
                for (k, (c, s)) in ids.enumerated() {
                    let r = p.server.state(of: s)!
                    #expect(r.buffered <= window)
                    #expect(r.buffered >= 0 && r.receiveCredit >= 0 && r.unannounced >= 0)
                    #expect(r.receiveCredit + r.buffered + r.unannounced == window)
                    let inFlight = pendingWindows.filter { $0.stream == k }.reduce(0) { $0 + Int($1.increment) }
                    #expect(p.client.sendCredit(c) + inFlight == r.receiveCredit)
                }
            }
        }
    }
}
