import Foundation
import Testing
import USPCore
import USPServer
import USPTestSupport
@testable import USPStore

/// The early-data replay cache a fleet shares through PostgreSQL (docs/FLEET.md): a client
/// ephemeral key admitted by one node is refused by every other.
@Suite struct SharedReplayCacheTests {
    static let key = (0..<32).map { UInt8($0) }

    @Test func aKeyIsAdmittedOnceAcrossNodesUntilItExpires() throws {
        guard let opened = try StoreBackend.postgres.open() else { return }
        let nodeA = try #require(opened.store as? any SharedReplayCache)
        let nodeB = try #require(try opened.another() as? any SharedReplayCache)
        let now = at(0)
        #expect(try nodeA.recordFirstUse(of: Self.key, until: now.addingTimeInterval(240), now: now))
        #expect(try !nodeB.recordFirstUse(of: Self.key, until: now.addingTimeInterval(240), now: now), "a replay to node B")
        #expect(try !nodeA.recordFirstUse(of: Self.key, until: now.addingTimeInterval(241), now: now.addingTimeInterval(1)))
        var other = Self.key
        other[31] ^= 1
        #expect(try nodeB.recordFirstUse(of: other, until: now.addingTimeInterval(240), now: now))
        // Once expired, the entry is taken over (the timestamp rule refuses such an old message 1 anyway).
        #expect(try nodeB.recordFirstUse(of: Self.key, until: now.addingTimeInterval(600), now: now.addingTimeInterval(300)))
        #expect(try nodeA.purgeReplayCache(before: now.addingTimeInterval(300)) == 1)  // `other`, expired at 240
        #expect(try nodeA.purgeReplayCache(before: now.addingTimeInterval(300)) == 0)
    }

    /// Two daemons' policies on one database: the early data of a message 1 is admitted by the
    /// first node that sees it, and refused by the other, as a replay.
    @Test func aMessageOneReplayedToAnotherNodeHasItsEarlyDataRefused() throws {
        guard let opened = try StoreBackend.postgres.open() else { return }
        let policy = { (store: any USPStore) in
            ServerPolicy(store: store, catalog: ApplicationCatalog(), audit: AuditLog(store: store, flushInterval: .zero), verifyPassword: { _, _ in false })
        }
        let nodeA = policy(opened.store), nodeB = policy(try opened.another())
        let now = Timestamp(seconds: UInt64(Date().timeIntervalSince1970), nanoseconds: 0)
        #expect(nodeA.admitEarlyData(clientEphemeral: Self.key, timestamp: now, now: now))
        #expect(!nodeB.admitEarlyData(clientEphemeral: Self.key, timestamp: now, now: now))
        #expect(!nodeA.admitEarlyData(clientEphemeral: Self.key, timestamp: now, now: now))
        var fresh = Self.key
        fresh[0] ^= 0x80
        #expect(nodeB.admitEarlyData(clientEphemeral: fresh, timestamp: now, now: now))
    }
}
