import Testing
import USPCore
import USPTestSupport

/// Self-caused misuse traps (preconditions); each runs in a child process.
@Suite struct StreamPreconditionTests {
    /// Control: the same calls within the rules exit cleanly.
    @Test func legalUseDoesNotTrap() async {
        await #expect(processExitsWith: .success) {
            var t = try StreamTable(role: .client, peerInitialWindow: 16384)
            let id = try t.open()
            t.consumeSendCredit(id, 16384)
            t.finish(id)
            _ = try t.peerAccepted(localID: id, peerID: 1)
            _ = try t.peerData(peerID: 1, count: 10)
            _ = t.consumed(id, 10)
        }
    }

    @Test func sendBeyondCreditTraps() async {
        await #expect(processExitsWith: .failure) {
            var t = try StreamTable(role: .client, peerInitialWindow: 16384)
            let id = try t.open()
            t.consumeSendCredit(id, 16385)
        }
    }

    @Test func sendAfterFinishTraps() async {
        await #expect(processExitsWith: .failure) {
            var t = try StreamTable(role: .client, peerInitialWindow: 16384)
            let id = try t.open()
            t.finish(id)
            t.consumeSendCredit(id, 1)
        }
    }

    @Test func doubleFinishTraps() async {
        await #expect(processExitsWith: .failure) {
            var t = try StreamTable(role: .client, peerInitialWindow: 16384)
            let id = try t.open()
            t.finish(id)
            t.finish(id)
        }
    }

    @Test func serverOpenTraps() async {
        await #expect(processExitsWith: .failure) {
            var t = try StreamTable(role: .server, peerInitialWindow: 16384)
            _ = try t.open()
        }
    }

    @Test func acceptTwiceTraps() async {
        await #expect(processExitsWith: .failure) {
            var t = try StreamTable(role: .server, peerInitialWindow: 16384)
            _ = try t.peerOpened(1)
            _ = t.accept(1)
            _ = t.accept(1)
        }
    }

    @Test func consumingMoreThanBufferedTraps() async {
        await #expect(processExitsWith: .failure) {
            var t = try StreamTable(role: .client, peerInitialWindow: 16384)
            let id = try t.open()
            _ = try t.peerAccepted(localID: id, peerID: 1)
            _ = try t.peerData(peerID: 1, count: 10)
            _ = t.consumed(id, 11)
        }
    }

    @Test func invalidLimitsTrap() async {
        await #expect(processExitsWith: .failure) {
            _ = try StreamTable(role: .client, limits: StreamLimits(initialWindow: 1000), peerInitialWindow: 16384)
        }
    }

    @Test func encodingStreamZeroTraps() async {
        await #expect(processExitsWith: .failure) {
            _ = Frame.fin(stream: 0).encoded
        }
    }

    @Test func emptyDataHeaderTraps() async {
        await #expect(processExitsWith: .failure) {
            var w = WireWriter()
            FrameWriter.writeDataHeader(stream: 1, count: 0, into: &w)
        }
    }
}
