import Foundation
import Testing
import USPCore
import USPServer
import USPTestSupport
@testable import USPStore

/// Failed-login penalties a fleet shares through PostgreSQL (docs/FLEET.md): the doubling windows
/// of `LoginThrottle`, counted in the database, so that guesses spread over the nodes meet the
/// same windows as guesses at one node.
@Suite struct SharedLoginPenaltiesTests {
    static let source = LoginPenalty(key: "src 192.0.2.1", cap: 8)
    static let identity = LoginPenalty(key: "id alice", cap: 1)

    static func seconds(_ end: Date?, after start: Date) -> Double? {
        end.map { ($0.timeIntervalSince(start) * 1000).rounded() / 1000 }
    }

    @Test func failuresOnEveryNodeCountTowardsOneDoublingWindow() throws {
        guard let opened = try StoreBackend.postgres.open() else { return }
        let nodeA = try #require(opened.store as? any SharedLoginPenalties)
        let nodeB = try #require(try opened.another() as? any SharedLoginPenalties)
        let keys = [Self.source, Self.identity]
        let t = at(0)
        // base 0.25 s, doubling per failure, whichever node saw it; each key under its own cap.
        var expected: [(source: Double, identity: Double)] = [(0.25, 0.25), (0.5, 0.5), (1, 1), (2, 1), (4, 1), (8, 1), (8, 1)]
        for (n, want) in expected.enumerated() {
            let node = n.isMultiple(of: 2) ? nodeA : nodeB
            let now = t.addingTimeInterval(Double(n))
            let ends = try node.recordLoginFailure(keys, base: 0.25, forgetAfter: 900, now: now)
            #expect(Self.seconds(ends[Self.source.key], after: now) == want.source, "failure \(n + 1), on node \(n % 2 == 0 ? "A" : "B")")
            #expect(Self.seconds(ends[Self.identity.key], after: now) == want.identity, "failure \(n + 1)")
        }
        // The last failure was at t+6: the source's window is open until t+14, the identity's until t+7.
        let open = try nodeB.openLoginPenalties([Self.source.key, Self.identity.key, "src 198.51.100.1"], now: t.addingTimeInterval(6.5))
        #expect(Self.seconds(open[Self.source.key], after: t) == 14)
        #expect(Self.seconds(open[Self.identity.key], after: t) == 7)
        #expect(open["src 198.51.100.1"] == nil)
        #expect(try nodeA.openLoginPenalties([Self.identity.key], now: t.addingTimeInterval(7.5)).isEmpty)

        // Failures are forgotten forgetAfter seconds after the last one: the count starts again.
        let later = t.addingTimeInterval(6 + 901)
        expected = [(0.25, 0.25)]
        let ends = try nodeA.recordLoginFailure(keys, base: 0.25, forgetAfter: 900, now: later)
        #expect(Self.seconds(ends[Self.source.key], after: later) == 0.25)

        // A success clears its keys on every node; stale keys are purged.
        try nodeB.clearLoginPenalties([Self.identity.key])
        #expect(try nodeA.openLoginPenalties([Self.source.key, Self.identity.key], now: later).keys.sorted() == [Self.source.key])
        _ = try nodeA.recordLoginFailure([LoginPenalty(key: "src 203.0.113.9", cap: 8)], base: 0.25, forgetAfter: 900, now: t)
        #expect(try nodeB.purgeLoginPenalties(before: t.addingTimeInterval(100)) == 1)
        #expect(try nodeB.purgeLoginPenalties(before: t.addingTimeInterval(100)) == 0)
    }

    /// Two daemons' policies on one database: a wrong password at node A opens the window that
    /// refuses the next attempt from that network at node B; the real user elsewhere is served.
    @Test func aFailedLoginAtOneNodeRefusesTheNextAttemptAtAnother() throws {
        guard let opened = try StoreBackend.postgres.open() else { return }
        try opened.store.upsertUser(UserRecord(name: "alice", passwordHash: try PasswordHash.hash(password: "correct horse")))
        let clock = TestClock()
        let policy = { (store: any USPStore) in
            ServerPolicy(store: store, catalog: ApplicationCatalog(), audit: AuditLog(store: store, flushInterval: .zero),
                         throttle: LoginThrottle(base: 30, maximum: 60), verifyPassword: { password, hash in (try? PasswordHash.verify(password: password, hash: hash)) ?? false },
                         monotonic: { clock.now })
        }
        let nodeA = policy(opened.store), nodeB = policy(try opened.another())
        var atA = MemoryPair(policy: nodeA)
        try atA.establish()
        try atA.login("alice", "wrong")
        #expect(atA.log.notes.last == .reply([0: "authentication_failed"]))

        var atB = MemoryPair(policy: nodeB)
        try atB.establish()
        try atB.login("alice", "correct horse")
        #expect(atB.log.notes.last == .reply([0: "rate_limited"]), "node B knew nothing of node A's failure")

        var elsewhere = MemoryPair(policy: nodeB, peerAddress: "198.51.100.7")
        try elsewhere.establish()
        try elsewhere.login("alice", "correct horse")
        #expect(elsewhere.log.notes.contains(.reply([0: "token"])), "\(elsewhere.log.notes)")
        // Node A's identity-wide delay was cleared by that success on node B.
        #expect(nodeA.loginDelay(fields: ["user": "alice"]) == 0)
    }
}
