import Synchronization
import Testing
@testable import USPServer

/// Fair admission: budgets shared between source networks, newcomers taking the slots of idle
/// strangers from the heaviest network, and never those of proven or busy connections.
@Suite struct AdmissionControlTests {
    /// Records which connections were told to give way.
    final class Evictions: Sendable {
        private let names = Mutex<[String]>([])
        func closer(_ name: String) -> @Sendable () -> Void { { self.names.withLock { $0.append(name) } } }
        var all: [String] { names.withLock { $0 } }
    }

    private func admit(_ a: AdmissionControl, _ source: String, _ name: String, _ log: Evictions) throws -> AdmissionControl.Admission {
        try a.admit(from: source, evict: log.closer(name)).get()
    }

    @Test func whileThereIsRoomEveryoneIsAdmittedAndCounted() throws {
        let a = AdmissionControl(maxConnections: 10, maxStarting: 4)
        let log = Evictions()
        for i in 0..<4 { _ = try admit(a, "192.0.2.\(i)", "c\(i)", log) }
        #expect(a.total == 4)
        #expect(a.starting == 4)
        #expect(a.countInNetwork(of: "192.0.2.200") == 4)
        #expect(log.all.isEmpty)
    }

    @Test func aFullStartingBudgetMakesTheHeaviestNetworkGiveWayOldestFirst() throws {
        let a = AdmissionControl(maxConnections: 100, maxStarting: 4)
        let log = Evictions()
        // One network holds three starting slots, another one.
        _ = try admit(a, "198.51.100.1", "flood-1", log)
        _ = try admit(a, "198.51.100.2", "flood-2", log)
        _ = try admit(a, "203.0.113.9", "other", log)
        _ = try admit(a, "198.51.100.3", "flood-3", log)
        // A newcomer from a third network: the flood's oldest gives way.
        let legit = try admit(a, "192.0.2.7", "legit", log)
        #expect(legit.evicted == AdmissionControl.Eviction(prefix: "198.51.100.0/24", wasStarting: true))
        #expect(log.all == ["flood-1"])
        #expect(a.starting == 4)
        #expect(a.evictions == 1)
        // The flood's own next connection can only rotate its own oldest slot.
        _ = try admit(a, "198.51.100.4", "flood-4", log)
        #expect(log.all == ["flood-1", "flood-2"])
        #expect(a.countInNetwork(of: "192.0.2.1") == 1, "the newcomer kept its slot")
    }

    @Test func provenAndBusyConnectionsNeverGiveWay() throws {
        let a = AdmissionControl(maxConnections: 3, maxStarting: 3)
        let log = Evictions()
        let proven = try admit(a, "198.51.100.1", "proven", log)
        let busy = try admit(a, "198.51.100.2", "busy", log)
        let anonymous = try admit(a, "198.51.100.3", "anonymous", log)
        a.update(proven.ticket, to: .starting(proven: true))
        a.update(busy.ticket, to: .busy)
        a.update(anonymous.ticket, to: .anonymous)
        #expect(a.starting == 1)
        // The whole connection budget is full: only the anonymous session can give way.
        let first = try admit(a, "192.0.2.1", "legit-1", log)
        #expect(first.evicted == AdmissionControl.Eviction(prefix: "198.51.100.0/24", wasStarting: false))
        #expect(log.all == ["anonymous"])
        // Now the heaviest network holds only a proven and a busy connection; the newcomer's own
        // network has an unproven one (legit-1), which rotates.
        _ = try admit(a, "192.0.2.2", "legit-2", log)
        #expect(log.all == ["anonymous", "legit-1"])
        a.update(first.ticket, to: .busy)  // already gone: ignored
        #expect(a.total == 3)
    }

    @Test func whenNobodyCanGiveWayTheNewcomerIsRefused() throws {
        let a = AdmissionControl(maxConnections: 2, maxStarting: 2)
        let log = Evictions()
        let one = try admit(a, "198.51.100.1", "one", log)
        let two = try admit(a, "192.0.2.1", "two", log)
        a.update(one.ticket, to: .busy)
        a.update(two.ticket, to: .starting(proven: true))
        #expect(throws: AdmissionControl.Refusal.tooManyConnections) { try a.admit(from: "203.0.113.1", evict: {}).get() }
        a.closed(one.ticket)
        #expect(a.total == 1)
        _ = try admit(a, "203.0.113.1", "three", log)
        #expect(log.all.isEmpty)
    }

    @Test func aNetworkThatIsNotHeavierThanTheNewcomersOwnKeepsItsSlots() throws {
        let a = AdmissionControl(maxConnections: 100, maxStarting: 2)
        let log = Evictions()
        _ = try admit(a, "198.51.100.1", "a", log)
        _ = try admit(a, "192.0.2.1", "b", log)
        // Both networks hold one; a second from 192.0.2.0/24 may not take 198.51.100.0/24's slot.
        _ = try admit(a, "192.0.2.2", "c", log)
        #expect(log.all == ["b"])
    }

    @Test func aConnectionThatBecameBusyBeforeItWasToldIsCountedAgain() throws {
        let a = AdmissionControl(maxConnections: 2, maxStarting: 2)
        let log = Evictions()
        let first = try admit(a, "198.51.100.1", "first", log)
        _ = try admit(a, "198.51.100.2", "second", log)
        _ = try admit(a, "192.0.2.1", "newcomer", log)
        #expect(log.all == ["first"])
        #expect(a.total == 2)
        // On its own thread, "first" had logged in meanwhile: it stays, over the budget.
        a.reinstate(first.ticket, as: .busy)
        #expect(a.total == 3)
        #expect(a.starting == 2)
        a.reinstate(first.ticket, as: .busy)  // once only
        #expect(a.total == 3)
        a.closed(first.ticket)
        #expect(a.total == 2)
        a.reinstate(first.ticket, as: .busy)  // closed: nothing to count again
        #expect(a.total == 2)
    }

    @Test func connectionsPerSourceAreCountedByAddressAndIPv6Slash64() throws {
        let a = AdmissionControl(maxConnections: 100, maxStarting: 100, maxPerSource: 2)
        let log = Evictions()
        _ = try admit(a, "192.0.2.1", "1", log)
        let second = try admit(a, "192.0.2.1", "2", log)
        #expect(throws: AdmissionControl.Refusal.tooManyFromSource) { try a.admit(from: "192.0.2.1", evict: {}).get() }
        _ = try admit(a, "192.0.2.2", "3", log)
        _ = try admit(a, "2001:db8:1:2::1", "4", log)
        _ = try admit(a, "2001:db8:1:2:ffff::9", "5", log)
        #expect(throws: AdmissionControl.Refusal.tooManyFromSource) { try a.admit(from: "2001:db8:1:2::77", evict: {}).get() }
        #expect(a.count(from: "192.0.2.1") == 2)
        a.closed(second.ticket)
        a.closed(second.ticket)  // twice: no effect
        #expect(a.count(from: "192.0.2.1") == 1)
        _ = try admit(a, "192.0.2.1", "6", log)
        #expect(a.total == 5)
    }

    @Test func networksFollowTheConfiguredPrefixLengths() throws {
        let a = AdmissionControl(maxConnections: 100, maxStarting: 2, prefixLengths: .init(v4: 16, v6: 48))
        let log = Evictions()
        _ = try admit(a, "198.51.1.1", "a", log)
        _ = try admit(a, "198.51.2.1", "b", log)
        #expect(a.countInNetwork(of: "198.51.200.200") == 2)
        _ = try admit(a, "2001:db8:1:2::1", "v6", log)
        #expect(log.all == ["a"], "198.51.0.0/16 is one network holding both slots")
        #expect(a.countInNetwork(of: "2001:db8:1:ffff::5") == 1)
    }

    /// Max-min fairness under a sustained flood: many flood networks can never starve a network
    /// that asks for a slot now and then.
    @Test func aFloodFromManyNetworksCannotKeepOutANewcomer() throws {
        let a = AdmissionControl(maxConnections: 4096, maxStarting: 64)
        let log = Evictions()
        for round in 0..<20 {
            for i in 0..<200 { _ = try? a.admit(from: "10.\(i % 50).\(round).\(i)", evict: {}).get() }
            let legit = try admit(a, "192.0.2.\(round)", "legit", log)
            #expect(a.starting <= 64)
            a.update(legit.ticket, to: .busy)
        }
        #expect(a.countInNetwork(of: "192.0.2.1") == 20)
        #expect(log.all.isEmpty, "a busy connection never gives way")
    }
}
