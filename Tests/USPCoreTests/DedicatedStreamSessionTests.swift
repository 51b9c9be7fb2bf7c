import Testing
@testable import USPCore
import USPTestSupport

/// Relay-free hand-off: a real ClientSession talks to a ServerSession, the server exports its
/// dedicated connection mid-stream, and a DedicatedStreamSession goes on from the snapshot.
@Suite struct DedicatedStreamSessionTests {
    static func pattern(_ n: Int, seed: Int = 0) -> [UInt8] {
        (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 >> 9 &+ seed) }
    }

    /// Small windows and a low rekey threshold, so credit and REKEY both come into play.
    static var tight: SessionConfiguration {
        var c = SessionConfiguration()
        c.streamWindow = UInt32(StreamLimits.minInitialWindow)
        c.rekeyAfterBytes = 8 * 1024
        c.maxRecordPlaintext = 4096
        return c
    }

    /// A dedicated connection (begin by name, first bytes in message 1), established.
    static func dedicated(_ configuration: SessionConfiguration = SessionConfiguration()) throws -> SessionPair {
        var pair = SessionPair(.ik, client: configuration)
        try pair.establish(ClientStart(application: .init(name: "echo"), initialData: Array("hello ".utf8)))
        #expect(pair.server.dedicatedStream == 1)
        #expect(pair.serverData[1] == Array("hello ".utf8))
        #expect(pair.clientSeen.contains(.accepted(1)))
        return pair
    }

    @Test func conversationContinuesByteExactWithBytesInFlightBothWays() throws {
        var pair = try Self.dedicated(Self.tight)
        // Server → client: sealed but not yet written at the hand-off.
        #expect(try Array("server before".utf8).withUnsafeBytes { try pair.server.write(stream: 1, $0) } == 13)
        #expect(pair.server.outboundByteCount > 0)
        // Client → server: several records; the server reads up to the middle of one (its header
        // opened, the body not), the rest is read by the shell after the freeze.
        let early = Self.pattern(6000, seed: 1)
        #expect(try early.withUnsafeBytes { try pair.client.write(stream: 1, $0) } == 6000)
        let wire = pair.client.drainOutbound { Array($0) }
        let firstRecord = 4096 + RecordLayout.overhead
        let split = firstRecord + RecordLayout.headerLength + 5
        pair.deliverToServer(Array(wire[..<split]))
        var handedOff = try RelayFreePair(from: pair, unreadInput: Array(wire[split...]))

        // Everything the client sent arrives exactly once, in order, in the application.
        #expect(handedOff.appData == Array("hello ".utf8) + early)
        handedOff.pump()
        #expect(handedOff.clientData == Array("server before".utf8))

        // Much more than a window each way: WINDOW credit and REKEY both directions.
        let up = Self.pattern(100_000, seed: 2)
        let down = Self.pattern(120_000, seed: 3)
        try handedOff.clientWritesAll(up)
        try handedOff.appWritesAll(down)
        #expect(handedOff.appData == Array("hello ".utf8) + early + up)
        #expect(handedOff.clientData == Array("server before".utf8) + down)
        #expect(handedOff.appSeen.contains(.writable))
        let records = try handedOff.appRecords()
        #expect(records.filter { $0.frames.contains(.rekey) }.count >= 10)
        #expect(records.contains { $0.frames.contains { if case .window = $0 { true } else { false } } })

        // FIN both ways, then CLOSE from the client.
        try handedOff.client.finish(stream: 1) { handedOff.clientSeen.append(Seen($0)) }
        handedOff.pump()
        #expect(handedOff.appSeen.last == .finished)
        try Array("last words".utf8).withUnsafeBytes { _ = try handedOff.app.write($0) }
        var appEvents: [AppSeen] = []
        try handedOff.app.finish { appEvents.append(AppSeen($0)) }
        #expect(appEvents == [.streamClosed(.ok)])
        handedOff.pump()
        #expect(handedOff.clientData.suffix(10) == Array("last words".utf8)[...])
        #expect(handedOff.clientSeen.suffix(2) == [.finished(1), .closedStream(1, .ok)])
        handedOff.client.close { handedOff.clientSeen.append(Seen($0)) }
        handedOff.pump()
        #expect(handedOff.appSeen.last == .closed(nil))
        #expect(handedOff.app.state == .closed)
    }

    @Test func applicationClosesAndClientSeesCleanClose() throws {
        var handedOff = try RelayFreePair(from: try Self.dedicated())
        try handedOff.app.finish { _ in }
        try handedOff.client.finish(stream: 1) { handedOff.clientSeen.append(Seen($0)) }
        handedOff.pump()
        #expect(handedOff.appSeen.suffix(2) == [.finished, .streamClosed(.ok)])
        handedOff.app.close { handedOff.appSeen.append(AppSeen($0)) }
        handedOff.pump()
        #expect(handedOff.clientSeen.last == .closed(nil))
    }

    @Test func clientFinBeforeHandoffIsReportedAfterTheData() throws {
        var pair = try Self.dedicated()
        try pair.client.finish(stream: 1) { _ in }
        pair.pump()
        #expect(pair.serverSeen.last == .finished(1))
        let handedOff = try RelayFreePair(from: pair)
        #expect(handedOff.appSeen == [.data(Array("hello ".utf8)), .finished])
    }

    @Test func pingAndResetAfterHandoff() throws {
        var handedOff = try RelayFreePair(from: try Self.dedicated())
        try handedOff.client.ping(42)
        handedOff.pump()
        #expect(try handedOff.appRecords().last?.frames == [.pong(42)])
        try handedOff.client.reset(stream: 1, code: .applicationRefused) { handedOff.clientSeen.append(Seen($0)) }
        handedOff.pump()
        #expect(handedOff.appSeen.last == .streamClosed(.applicationRefused))
        #expect(!handedOff.app.streamIsOpen)
    }

    @Test func tamperedRecordAfterHandoffEndsTheSessionWithItsCode() throws {
        var handedOff = try RelayFreePair(from: try Self.dedicated())
        _ = try Array("abc".utf8).withUnsafeBytes { try handedOff.client.write(stream: 1, $0) }
        var wire = handedOff.client.drainOutbound { Array($0) }
        wire[RecordLayout.headerLength + 2] ^= 0x40
        handedOff.deliverToApp(wire)
        #expect(handedOff.appSeen.last == .closed(.recordTampered))
        let close = handedOff.app.drainOutbound { Array($0) }
        handedOff.deliverToClient(close)
        #expect(handedOff.clientSeen.last == .closed(.recordTampered))
    }

    @Test func replayedRecordFromBeforeTheHandoffIsNamed() throws {
        var pair = try Self.dedicated()
        try pair.clientWrite(1, Array("once".utf8))
        // The last record the client sent before the hand-off, sent again after it.
        let replay = Array(pair.toServerWire.suffix(96 + RecordLayout.overhead))  // one 96-byte bucket
        var handedOff = try RelayFreePair(from: pair)
        handedOff.deliverToApp(replay)
        #expect(handedOff.appSeen.last == .closed(.recordReplayed))
    }

    @Test func truncatedRecordAtEndOfInput() throws {
        var handedOff = try RelayFreePair(from: try Self.dedicated())
        _ = try Array("abc".utf8).withUnsafeBytes { try handedOff.client.write(stream: 1, $0) }
        let wire = handedOff.client.drainOutbound { Array($0) }
        handedOff.deliverToApp(Array(wire.dropLast(3)))
        var seen: [AppSeen] = []
        handedOff.app.endOfInput { seen.append(AppSeen($0)) }
        #expect(seen == [.closed(.recordTruncated)])
    }

    @Test func dataBeyondCreditIsAFlowControlViolation() throws {
        var handedOff = try RelayFreePair(from: try Self.dedicated(Self.tight))
        handedOff.appConsumes = false
        let chunk = Self.pattern(4000)
        for _ in 0..<5 { try handedOff.client._sendRawRecord(Frame.data(stream: 1, data: chunk).encoded) }
        handedOff.pump()
        #expect(handedOff.appSeen.last == .closed(.flowControl))
    }

    @Test func openAndSessionMessagesAreRefusedAndTheStreamGoesOn() throws {
        var handedOff = try RelayFreePair(from: try Self.dedicated())
        let open = try handedOff.client.openStream(application: "echo")
        handedOff.pump()
        #expect(handedOff.clientSeen.last == .rejected(open, .streamRefused))
        try handedOff.client.requestServices([ServiceIndex(1): [:]])
        handedOff.pump()
        #expect(handedOff.clientSeen.last == .serverError(.unexpectedMessage))
        try handedOff.clientWritesAll(Array("still here".utf8))
        #expect(handedOff.appData.suffix(10) == Array("still here".utf8)[...])
        #expect(handedOff.app.state == .open)
        // A message only a server sends ends the session, as it does before the hand-off.
        try handedOff.client._sendRawRecord(try messageFrame(.error(SessionErrorMessage(.ok))).encoded)
        handedOff.pump()
        #expect(handedOff.appSeen.last == .closed(.unexpectedMessage))
    }

    @Test func menuConnectionCannotBeHandedOff() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let token = try pair.token(1)
        _ = try pair.client.openStream(applicationToken: token)
        pair.pump()
        #expect(pair.server.dedicatedStream == nil)
        #expect(throws: USPError.self) { try pair.server.beginHandoff(undeliveredData: []) }
        #expect(pair.server.state == .established)
    }

    @Test func undeliveredCountMustMatchTheStream() throws {
        var pair = try Self.dedicated()
        #expect(throws: USPError.self) { try pair.server.beginHandoff(undeliveredData: []) }
        #expect(pair.server.state == .established)
    }

    @Test func failedHandoffLeavesTheSessionWhereItWas() throws {
        var pair = try Self.dedicated()
        _ = try Array("queued".utf8).withUnsafeBytes { try pair.server.write(stream: 1, $0) }
        let snapshot = try pair.server.beginHandoff(undeliveredData: pair.serverData[1]!)
        #expect(!snapshot.unwrittenOutput.isEmpty)
        #expect(pair.server.state == .handingOff)
        #expect(pair.server.outboundByteCount == 0)
        pair.server.handoffFailed()
        #expect(pair.server.state == .established)
        pair.pump()
        #expect(pair.clientData[1] == Array("queued".utf8))
        try pair.clientWrite(1, Array("more".utf8))
        #expect(pair.serverData[1] == Array("hello more".utf8))
    }

    @Test func duringTheHandoffTheSessionWaitsForItsOutcome() throws {
        var pair = try Self.dedicated()
        _ = try pair.server.beginHandoff(undeliveredData: pair.serverData[1]!)
        var events: [Seen] = []
        pair.server.close(code: .shuttingDown) { events.append(Seen($0)) }
        pair.server.endOfInput { events.append(Seen($0)) }
        #expect(events.isEmpty)
        #expect(pair.server.outboundByteCount == 0)
        #expect(try Array("x".utf8).withUnsafeBytes { try pair.server.write(stream: 1, $0) } == 0)
        #expect(pair.server.state == .handingOff)
        pair.server.handoffFailed()
        pair.server.close(code: .shuttingDown) { events.append(Seen($0)) }
        #expect(events == [.closed(.shuttingDown)])
    }

    @Test func paddingPolicyTravelsWithTheSnapshot() throws {
        var padded = SessionConfiguration()
        padded.padding = .multiple(of: 128)
        var pair = SessionPair(.ik, client: SessionConfiguration(), server: padded)
        try pair.establish(ClientStart(application: .init(name: "echo"), initialData: Array("hi".utf8)))
        var handedOff = try RelayFreePair(from: pair)
        let before = try handedOff.appRecords().count
        try handedOff.appWritesAll(Self.pattern(1000))
        let after = try handedOff.appRecords().dropFirst(before)
        #expect(!after.isEmpty)
        #expect(after.allSatisfy { $0.length % 128 == 0 })
        #expect(handedOff.clientData == Self.pattern(1000))
    }

    @Test func snapshotDecodingNamesWhatIsWrong() throws {
        let pair = try Self.dedicated()
        var server = pair.server
        let good = try server.beginHandoff(undeliveredData: pair.serverData[1]!).encoded()
        func problem(_ bytes: [UInt8]) -> String? {
            do { _ = try DedicatedStreamSnapshot(encoded: bytes); return nil } catch {
                #expect(error.code == .malformedMessage)
                return error.detail
            }
        }
        #expect(problem(good) == nil)
        var badMagic = good
        badMagic[0] = 0
        #expect(problem(badMagic)?.contains("USPS") == true)
        var badVersion = good
        badVersion[4] = 3
        #expect(problem(badVersion)?.contains("version 3") == true)
        #expect(problem(Array(good.dropLast())) != nil)
        #expect(problem(good + [0])?.contains("after unwritten_output") == true)
    }
}
