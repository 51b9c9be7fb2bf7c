import Testing
import USPCore
import USPTestSupport

func makeClient(_ limits: StreamLimits = StreamLimits(), peerWindow: Int = 65536) throws -> StreamTable {
    try StreamTable(role: .client, limits: limits, peerInitialWindow: peerWindow)
}

func makeServer(_ limits: StreamLimits = StreamLimits(), peerWindow: Int = 65536) throws -> StreamTable {
    try StreamTable(role: .server, limits: limits, peerInitialWindow: peerWindow)
}

/// Runs a throwing table call and returns its error code, or nil if it did not throw.
/// (An error that is not a `USPError` comes back as `.internalError`.)
func errorCode<T>(_ body: () throws -> T) -> USPError.Code? {
    do {
        _ = try body()
        return nil
    } catch let error as USPError {
        return error.code
    } catch {
        return .internalError
    }
}

/// A client and a server table with one stream opened and accepted.
struct Pair {
    var client: StreamTable
    var server: StreamTable
    var clientID: UInt32
    var serverID: UInt32

    init(clientLimits: StreamLimits = StreamLimits(), serverLimits: StreamLimits = StreamLimits()) throws {
        client = try StreamTable(role: .client, limits: clientLimits, peerInitialWindow: serverLimits.initialWindow)
        server = try StreamTable(role: .server, limits: serverLimits, peerInitialWindow: clientLimits.initialWindow)
        clientID = 0
        serverID = 0
        (clientID, serverID) = try openStream()
    }

    mutating func openStream() throws -> (UInt32, UInt32) {
        let c = try client.open()
        guard case .pending(let pendingID) = try server.peerOpened(c) else { throw USPError(.streamLimit) }
        let accepted = server.accept(c)
        let s = try #require(accepted)
        #expect(s == pendingID)
        #expect(try client.peerAccepted(localID: c, peerID: s) == .accepted(localID: c, peerID: s))
        return (c, s)
    }
}

@Suite struct StreamTableTests {
    // MARK: Opening

    @Test func clientOpenAcceptLifecycle() throws {
        var client = try makeClient()
        let a = try client.open()
        let b = try client.open()
        #expect((a, b) == (1, 2))
        #expect(client.state(of: a)?.phase == .opening)
        #expect(client.state(of: a)?.peerID == nil)
        #expect(client.count == 2)

        #expect(try client.peerAccepted(localID: b, peerID: 1) == .accepted(localID: b, peerID: 1))
        #expect(client.state(of: b)?.phase == .open)
        #expect(client.state(of: b)?.peerID == 1)
        #expect(client.localID(forPeer: 1) == b)
        #expect(client.highestPeerID == 1)
        // Out-of-order acceptor ids are fine; they only have to be unused.
        #expect(try client.peerAccepted(localID: a, peerID: 3) == .accepted(localID: a, peerID: 3))
        #expect(Set(client.openStreams.map(\.localID)) == [a, b])
        #expect(client.openStreams.allSatisfy { $0.phase == .open })
    }

    @Test func acceptForUnknownOrNonOpeningStream() throws {
        var client = try makeClient()
        #expect(errorCode { try client.peerAccepted(localID: 1, peerID: 1) } == .unknownStream)
        let a = try client.open()
        #expect(errorCode { try client.peerAccepted(localID: a + 1, peerID: 1) } == .unknownStream)
        _ = try client.peerAccepted(localID: a, peerID: 1)
        #expect(errorCode { try client.peerAccepted(localID: a, peerID: 2) } == .unknownStream)

        var server = try makeServer()
        #expect(errorCode { try server.peerAccepted(localID: 1, peerID: 1) } == .unknownStream)
        #expect(errorCode { try server.peerRejected(localID: 1, code: 0) } == .unknownStream)
    }

    @Test func acceptWithAcceptorIDAlreadyInUse() throws {
        var client = try makeClient()
        let a = try client.open()
        let b = try client.open()
        _ = try client.peerAccepted(localID: a, peerID: 7)
        #expect(errorCode { try client.peerAccepted(localID: b, peerID: 7) } == .duplicateStream)
    }

    @Test func rejectRemovesOpeningStream() throws {
        var client = try makeClient()
        let a = try client.open()
        #expect(try client.peerRejected(localID: a, code: 309) == .rejected(localID: a, code: 309))
        #expect(client.isClosed(a))
        #expect(client.count == 0)
        // A second REJECT races nothing: the stream is gone, so it is ignored.
        #expect(try client.peerRejected(localID: a, code: 309) == .ignored)
        #expect(errorCode { try client.peerRejected(localID: 9, code: 1) } == .unknownStream)

        let b = try client.open()
        _ = try client.peerAccepted(localID: b, peerID: 1)
        #expect(errorCode { try client.peerRejected(localID: b, code: 1) } == .unknownStream)
    }

    @Test func serverPeerOpenedAcceptReject() throws {
        var server = try makeServer()
        #expect(try server.peerOpened(1) == .pending(localID: 1))
        #expect(try server.peerOpened(5) == .pending(localID: 2))
        #expect(server.state(of: 1)?.phase == .pending)
        #expect(server.sendCredit(1) == 0)  // nothing may be sent before ACCEPT

        // The policy answers out of order.
        #expect(server.accept(5) == 2)
        #expect(server.state(of: 2)?.phase == .open)
        #expect(server.reject(1) == true)
        #expect(server.isClosed(1))
        #expect(server.count == 1)
        #expect(try server.peerData(peerID: 1, count: 10) == .ignored)  // late DATA after REJECT
    }

    @Test func serverRequiresIncreasingOpenIDs() throws {
        var server = try makeServer()
        _ = try server.peerOpened(3)
        #expect(errorCode { try server.peerOpened(3) } == .streamIDNotIncreasing)
        #expect(errorCode { try server.peerOpened(2) } == .streamIDNotIncreasing)
        #expect(errorCode { try server.peerOpened(0) } == .streamIDNotIncreasing)
        #expect(try server.peerOpened(4) == .pending(localID: 2))
    }

    @Test func clientNeverAcceptsOpen() throws {
        var client = try makeClient()
        #expect(errorCode { try client.peerOpened(1) } == .unexpectedMessage)
    }

    @Test func openBeyondMaxStreamsIsRefused() throws {
        var server = try makeServer(StreamLimits(maxStreams: 2))
        #expect(try server.peerOpened(1) == .pending(localID: 1))
        #expect(try server.peerOpened(2) == .pending(localID: 2))
        #expect(try server.peerOpened(3) == .refuse(.streamLimit))
        #expect(server.refusedCount == 1)
        #expect(server.count == 2)
        // The refused stream's early DATA is dropped, not an error.
        #expect(try server.peerData(peerID: 3, count: 100) == .ignored)
        // Pending streams count; once one goes, a new OPEN fits.
        server.reject(1)
        #expect(try server.peerOpened(4) == .pending(localID: 3))
        #expect(try server.peerOpened(5) == .refuse(.streamLimit))
        #expect(server.refusedCount == 2)
    }

    @Test func clientOpenBeyondMaxStreamsThrows() throws {
        var client = try makeClient(StreamLimits(maxStreams: 3))
        for _ in 0..<3 { _ = try client.open() }
        #expect(errorCode { try client.open() } == .streamLimit)
        client.reset(2)
        #expect(try client.open() == 4)
    }

    // MARK: Data before ACCEPT

    @Test func dataFollowsOpenBeforeAccept() throws {
        var client = try makeClient(peerWindow: 20000)
        var server = try makeServer()
        let c = try client.open()
        #expect(client.sendCredit(c) == 20000)
        client.consumeSendCredit(c, 5000)
        client.finish(c)  // OPEN + DATA + FIN, all before ACCEPT
        #expect(client.sendCredit(c) == 0)

        guard case .pending(let s) = try server.peerOpened(c) else { Issue.record("refused"); return }
        #expect(try server.peerData(peerID: c, count: 5000) == .data(localID: s, count: 5000))
        #expect(try server.peerFinished(peerID: c) == .peerFinished(localID: s, closed: false))
        #expect(server.state(of: s)?.buffered == 5000)
        #expect(server.accept(c) == s)
        #expect(server.consumed(s, 5000) == nil)  // the peer finished: no WINDOW needed
        server.consumeSendCredit(s, 100)
        #expect(server.finish(s) == true)
        #expect(server.isClosed(s))

        _ = try client.peerAccepted(localID: c, peerID: s)
        #expect(try client.peerData(peerID: s, count: 100) == .data(localID: c, count: 100))
        #expect(try client.peerFinished(peerID: s) == .peerFinished(localID: c, closed: true))
        #expect(client.isClosed(c))
        #expect(client.isEmpty && server.isEmpty)
    }

    @Test func peerResetWhilePendingMakesAcceptReturnNil() throws {
        var server = try makeServer()
        _ = try server.peerOpened(1)
        _ = try server.peerOpened(2)
        #expect(try server.peerReset(peerID: 1, code: 7) == .reset(localID: 1, code: 7))
        #expect(server.accept(1) == nil)
        _ = try server.peerReset(peerID: 2, code: 7)
        #expect(server.reject(2) == false)
    }

    @Test func localResetWhileOpeningThenLateAccept() throws {
        var client = try makeClient()
        let c = try client.open()
        #expect(client.reset(c) == true)
        #expect(client.isClosed(c))
        // The server accepted before it saw our RESET: its ACCEPT and DATA are dropped.
        #expect(try client.peerAccepted(localID: c, peerID: 1) == .ignored)
        #expect(try client.peerData(peerID: 1, count: 10) == .ignored)
        #expect(try client.peerFinished(peerID: 1) == .ignored)
        #expect(errorCode { try client.peerData(peerID: 2, count: 10) } == .unknownStream)
    }

    // MARK: FIN

    @Test func finLocalThenPeer() throws {
        var p = try Pair()
        #expect(p.client.finish(p.clientID) == true)
        #expect(p.client.state(of: p.clientID)?.localFinished == true)
        #expect(p.client.sendCredit(p.clientID) == 0)
        // Half-closed: the peer may still send.
        #expect(try p.client.peerData(peerID: p.serverID, count: 10) == .data(localID: p.clientID, count: 10))
        #expect(try p.client.peerFinished(peerID: p.serverID) == .peerFinished(localID: p.clientID, closed: true))
        #expect(p.client.isClosed(p.clientID))
        #expect(p.client.count == 0)
        #expect(p.client.localID(forPeer: p.serverID) == nil)
    }

    @Test func finPeerThenLocal() throws {
        var p = try Pair()
        #expect(try p.server.peerFinished(peerID: p.clientID) == .peerFinished(localID: p.serverID, closed: false))
        #expect(p.server.state(of: p.serverID)?.peerFinished == true)
        // Half-closed: this side may still send.
        #expect(p.server.sendCredit(p.serverID) > 0)
        p.server.consumeSendCredit(p.serverID, 1)
        #expect(p.server.finish(p.serverID) == true)
        #expect(p.server.isClosed(p.serverID))
    }

    @Test func dataAfterPeerFinIsStreamClosed() throws {
        var p = try Pair()
        _ = try p.server.peerFinished(peerID: p.clientID)
        #expect(errorCode { try p.server.peerData(peerID: p.clientID, count: 1) } == .streamClosed)
    }

    @Test func doublePeerFinIsStreamClosed() throws {
        var p = try Pair()
        _ = try p.server.peerFinished(peerID: p.clientID)
        #expect(errorCode { try p.server.peerFinished(peerID: p.clientID) } == .streamClosed)
    }

    @Test func finishOnGoneStreamSendsNothing() throws {
        var p = try Pair()
        _ = try p.client.peerReset(peerID: p.serverID, code: 1)
        #expect(p.client.finish(p.clientID) == false)
        #expect(p.client.reset(p.clientID) == false)
        #expect(p.client.consumed(p.clientID, 0) == nil)
        #expect(p.client.sendCredit(p.clientID) == 0)
    }

    // MARK: RESET

    @Test func localResetThenLateFramesAreIgnored() throws {
        var p = try Pair()
        #expect(p.server.reset(p.serverID) == true)
        #expect(p.server.isClosed(p.serverID))
        #expect(try p.server.peerData(peerID: p.clientID, count: 1000) == .ignored)
        #expect(try p.server.peerWindow(peerID: p.clientID, increment: 5) == .ignored)
        #expect(try p.server.peerFinished(peerID: p.clientID) == .ignored)
        #expect(try p.server.peerReset(peerID: p.clientID, code: 3) == .ignored)
        // Ids never used by the peer are still errors.
        #expect(errorCode { try p.server.peerData(peerID: p.clientID + 1, count: 1) } == .unknownStream)
    }

    @Test func peerResetRemovesStream() throws {
        var p = try Pair()
        #expect(try p.client.peerReset(peerID: p.serverID, code: 42) == .reset(localID: p.clientID, code: 42))
        #expect(p.client.isClosed(p.clientID))
        #expect(try p.client.peerData(peerID: p.serverID, count: 1) == .ignored)
    }

    @Test func resetHalfClosedStream() throws {
        var p = try Pair()
        p.client.finish(p.clientID)
        #expect(p.client.reset(p.clientID) == true)
        #expect(p.client.isClosed(p.clientID))
    }

    // MARK: Unknown ids

    @Test func dataOnNeverSeenID() throws {
        var server = try makeServer()
        #expect(errorCode { try server.peerData(peerID: 1, count: 1) } == .unknownStream)
        #expect(errorCode { try server.peerWindow(peerID: 1, increment: 1) } == .unknownStream)
        #expect(errorCode { try server.peerFinished(peerID: 1) } == .unknownStream)
        #expect(errorCode { try server.peerReset(peerID: 1, code: 0) } == .unknownStream)
        #expect(errorCode { try server.peerData(peerID: 0, count: 1) } == .unknownStream)

        var client = try makeClient()
        _ = try client.open()
        // An opening stream has no peer id yet: the server cannot address it.
        #expect(errorCode { try client.peerData(peerID: 1, count: 1) } == .unknownStream)
    }

    @Test func zeroLengthDataAndZeroIncrementAreMalformed() throws {
        var p = try Pair()
        #expect(errorCode { try p.server.peerData(peerID: p.clientID, count: 0) } == .malformedFrame)
        #expect(errorCode { try p.server.peerWindow(peerID: p.clientID, increment: 0) } == .malformedFrame)
    }

    @Test func idsAreNeverReused() throws {
        var p = try Pair()
        var seenClient: Set<UInt32> = [p.clientID]
        var seenServer: Set<UInt32> = [p.serverID]
        for i in 0..<50 {
            if i % 2 == 0 { p.client.reset(p.clientID) } else { p.client.finish(p.clientID) }
            (p.clientID, p.serverID) = try p.openStream()
            #expect(seenClient.insert(p.clientID).inserted)
            #expect(seenServer.insert(p.serverID).inserted)
        }
        #expect(p.client.lastLocalID == 51)
        #expect(p.server.lastLocalID == 51)
    }
}
