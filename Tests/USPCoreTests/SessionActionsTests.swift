import Testing
@testable import USPCore
import USPTestSupport

/// The actions buffer hands out stream bytes without copying them when they lie in the record
/// reader's buffer, and stays correct when that buffer is reused, when a call fails half-way, and
/// when bytes come from elsewhere (early data).
@Suite struct SessionActionsTests {
    /// A menu connection with one stream open to the public `echo` application.
    static func openStream() throws -> (SessionPair, UInt32) {
        var pair = SessionPair(.ik)
        try pair.establish()
        let stream = try pair.client.openStream(application: "echo")
        pair.pump()
        #expect(pair.server.openStreamCount == 1)
        return (pair, stream)
    }

    static func clientSends(_ pair: inout SessionPair, _ stream: UInt32, _ chunks: [[UInt8]]) throws -> [UInt8] {
        for chunk in chunks {
            let n = try chunk.withUnsafeBytes { try pair.client.write(stream: stream, $0) }
            #expect(n == chunk.count)
        }
        return pair.client.drainOutbound { Array($0) }
    }

    @Test func dataOpenedInTheReadersBufferIsHandedOutInOrderAndSurvivesTheNextRead() throws {
        var (pair, stream) = try Self.openStream()
        let first = (0..<3).map { i in [UInt8](repeating: UInt8(i + 1), count: 1000 + i) }
        var actions = ServerActions()
        let wire = try Self.clientSends(&pair, stream, first)
        pair.server.receive(wire, now: pair.now, delegate: pair.policy, into: &actions)
        var seen: [[UInt8]] = []
        var kept: ArraySlice<UInt8> = []
        for case .streamData(_, let data) in actions {
            seen.append(Array(data))
            if kept.isEmpty { kept = data }
        }
        #expect(seen == first)
        #expect(actions.lentAny, "bytes opened in the reader's buffer are lent, not copied")

        // The next read reuses the reader's buffer while a slice of it is still held: the slice
        // keeps what it was (the buffer is copied rather than overwritten).
        let second = [[UInt8](repeating: 9, count: 1500)]
        var more = ServerActions()
        let wire2 = try Self.clientSends(&pair, stream, second)
        pair.server.receive(wire2, now: pair.now, delegate: pair.policy, into: &more)
        #expect(Array(kept) == first[0])
        // (Bucket padding may carry the 1500 bytes in two records: two data actions.)
        #expect(more.compactMap { if case .streamData(_, let d) = $0 { Array(d) } else { nil } }.flatMap { $0 } == second[0])
        actions.removeAll()
        #expect(actions.isEmpty && actions.lent.isEmpty)
    }

    @Test func dataBeforeAFailureInTheSameReadIsStillHandedOut() throws {
        var (pair, stream) = try Self.openStream()
        var wire = try Self.clientSends(&pair, stream, [Array("before the damage".utf8)])
        let good = wire.count
        wire += try Self.clientSends(&pair, stream, [Array("after".utf8)])
        wire[good + 3] ^= 0x01   // the second record's ciphertext no longer authenticates
        var actions = ServerActions()
        pair.server.receive(wire, now: pair.now, delegate: pair.policy, into: &actions)
        var texts: [String] = []
        var closed: USPError.Code?
        for action in actions {
            switch action {
            case .streamData(_, let d): texts.append(String(decoding: d, as: UTF8.self))
            case .closed(let e): closed = e?.code
            default: break
            }
        }
        #expect(texts == ["before the damage"])
        #expect(closed != nil)
    }
}
