import Foundation
import Testing
import USPCore
import USPNIO
import USPTestSupport

/// How the daemon ends a session whose client closed its side of the TCP connection
/// (docs/PROTOCOL.md §8.3): inside a record it still answers with a CLOSE `record_truncated`
/// before closing; between records there is no one to tell, so it closes without a word.
@Suite struct ConnectionEndTests {
    @Test func aConnectionEndingInsideARecordIsAnsweredWithClose() async throws {
        try await withDaemon(try TestDaemon()) { d in
            let client = try d.menuClient()
            // The first 10 bytes of a record (its header is longer), then the client's FIN.
            try client.socket.send([UInt8](repeating: 0x5a, count: 10))
            shutdown(client.socket.fd, CInt(SHUT_WR))
            try client.pump(timeout: 5) { $0.notes.contains { if case .closed = $0 { true } else { false } } }
            #expect(client.log.notes.last == .closed(USPError.Code.recordTruncated.name),
                    "the server's CLOSE names the truncation: \(client.log.notes)")
            #expect(client.socket.readToEnd(timeout: 5).closed, "then the server closes")
        }
    }

    @Test func aConnectionEndingBetweenRecordsIsClosedWithoutAWord() async throws {
        try await withDaemon(try TestDaemon()) { d in
            let client = try d.menuClient()
            shutdown(client.socket.fd, CInt(SHUT_WR))
            let rest = client.socket.readToEnd(timeout: 5)
            #expect(rest.closed)
            #expect(rest.bytes.isEmpty, "nothing is sent to a peer that left between records: \(rest.bytes.count) bytes")
        }
    }
}

/// `anonymous_session_lifetime`: a stranger on the menu is closed after it, PINGs or not; a
/// session that logged in is not.
@Suite struct AnonymousLifetimeTests {
    /// PINGs about every 100 ms (far below the control-flood guard) until the server closes or `limit` seconds pass; when it closed (nil: never).
    static func closedAfterPinging(_ client: SocketClient, limit: Double) throws -> Double? {
        let started = ServerClock.monotonic()
        var n: UInt64 = 0
        while ServerClock.monotonic() - started < limit {
            n += 1
            try? client.session.ping(n)
            try? client.flush()
            try client.pumpOnce(timeout: 0.1)
            Thread.sleep(forTimeInterval: 0.1)
            if client.log.notes.contains(where: { if case .closed = $0 { true } else { false } }) {
                return ServerClock.monotonic() - started
            }
        }
        return nil
    }

    @Test func aStrangerIsClosedAfterTheLifetimeEvenWhilePinging() async throws {
        try await withDaemon(try TestDaemon(anonymousSessionLifetime: 1)) { d in
            let stranger = try d.menuClient()
            let closedAfter = try #require(try Self.closedAfterPinging(stranger, limit: 6), "the stranger was never closed")
            #expect(closedAfter < 2.5, "closed after \(closedAfter) s")
            #expect(stranger.log.notes.last == .closed(USPError.Code.idleTimeout.name), "\(stranger.log.notes.suffix(3))")
        }
    }

    @Test func aSessionThatLoggedInIsNotClosed() async throws {
        try await withDaemon(try TestDaemon(anonymousSessionLifetime: 1)) { d in
            let member = try d.menuClient()
            try member.login("bob", "hunter2")
            #expect(try Self.closedAfterPinging(member, limit: 2.5) == nil, "\(member.log.notes.suffix(3))")
        }
    }
}
