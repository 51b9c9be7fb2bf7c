import Foundation
import Testing
import USPCore
import USPNIO
import USPTestSupport

/// Fair admission in the running daemon (docs/PROTOCOL.md §10.1): full budgets make the
/// heaviest network's idle strangers give way to a newcomer; proven and logged-in sessions never do.
@Suite struct FairAdmissionTests {
    @Test func idleStrangersFromAnotherNetworkGiveWayToAClientThatKnowsTheKey() async throws {
        try await withDaemon(try TestDaemon(handshakeTimeout: 30, maxUnauthenticated: 4)) { d in
            // Four idle connections from 127.1.0.0/24 take every unauthenticated slot.
            let idle = try (1...4).map { try RawSocket(host: "127.0.0.1", port: d.port4, source: "127.1.0.\($0)") }
            try await Task.sleep(for: .milliseconds(200))
            #expect(d.daemon.runtime.admission.starting == 4)
            // A client from 127.0.0.0/24 still gets its menu: the oldest idle one gave way, silently.
            let client = try d.menuClient()
            let first = idle[0].readToEnd(timeout: 5)
            #expect(first.closed, "the oldest idle stranger was closed")
            #expect(first.bytes.isEmpty, "without a byte: \(first.bytes.count)")
            #expect(idle[1].read(timeout: 0.2) == nil, "the others keep their slots")
            #expect(d.daemon.runtime.admission.evictions == 1)
            _ = client
        }
    }

    @Test func anAnonymousMenuSessionGivesWayWithServerBusyButALoggedInOneNever() async throws {
        try await withDaemon(try TestDaemon(maxConnections: 2, maxUnauthenticated: 2)) { d in
            let member = try d.menuClient()
            try member.login("bob", "hunter2")
            let anonymous = try d.menuClient()
            // Both slots are used; a newcomer takes the anonymous session's.
            let newcomer = try d.menuClient()
            _ = try anonymous.pump(timeout: 5) { $0.notes.contains { if case .closed = $0 { true } else { false } } }
            #expect(anonymous.log.notes.last == .closed(USPError.Code.serverBusy.name), "\(anonymous.log.notes)")
            // Now one logged-in session and one anonymous from the same network: the next
            // newcomer rotates the anonymous one; after that login, nothing can give way.
            try newcomer.login("bob", "hunter2")
            let refused = try RawSocket(host: "127.0.0.1", port: d.port4)
            let end = refused.readToEnd(timeout: 5)
            #expect(end.closed && end.bytes.isEmpty, "closed at once without a byte")
            #expect(member.socket.read(timeout: 0.2) == nil, "the logged-in sessions are untouched")
        }
    }
}
