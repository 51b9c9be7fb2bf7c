import Foundation
import Testing
import USPTestSupport
@testable import USPServer
import USPStore

/// Strangers' rows: one each within a budget per network, summaries past it, held openings.
@Suite struct AuditSummariesTests {
    static func failedLogin(_ address: String, user: String = "alice", at t: Double = 0) -> AuditEvent {
        AuditEvent(time: Date(timeIntervalSince1970: 1_000_000 + t), kind: .authentication, session: "s-\(address)-\(t)",
                   peerAddress: address, identity: user, method: "password", result: "authentication_failed")
    }

    @Test func eachNetworkGetsItsOwnRowsWithinBudgetThenIsCounted() {
        var s = AuditSummaries(budget: .init(perNetwork: 3, overall: 100, topNetworks: 16, interval: 60))
        let written = (0..<10).filter { s.admit(Self.failedLogin("198.51.100.\($0)", at: Double($0)), now: 0) }
        #expect(written.count == 3, "a /24 shares one budget")
        let other = s.admit(Self.failedLogin("192.0.2.1"), now: 0)
        #expect(other, "another network has its own")
        // The budget refills at perNetwork per minute.
        let early = s.admit(Self.failedLogin("198.51.100.1"), now: 10)
        let later = s.admit(Self.failedLogin("198.51.100.1"), now: 30)
        #expect(!early)
        #expect(later)
        #expect(s.summarised == 8)
        #expect(s.due(now: 30).isEmpty, "not before the interval")
        let rows = s.due(now: 61)
        #expect(rows.count == 1)
        let row = rows[0]
        #expect(row.kind == .authentication)
        #expect(row.peerAddress == "198.51.100.0/24")
        #expect(row.count == 8)
        #expect(row.result == "authentication_failed")
        #expect(row.identity == "alice")
        #expect(row.durationMS == 9000)
        #expect(row.detail == "summary of 8 event(s); results: authentication_failed×8; users: alice×8")
        #expect(s.due(now: 200, force: true).isEmpty, "counted once")
    }

    @Test func anOverallBudgetBoundsManyNetworks() {
        var s = AuditSummaries(budget: .init(perNetwork: 10, overall: 5, topNetworks: 16, interval: 60))
        let written = (0..<50).filter { s.admit(Self.failedLogin("10.0.\($0).1"), now: 0) }
        #expect(written.count == 5)
        #expect(s.summarised == 45)
    }

    @Test func theBusiestNetworksGetARowEachAndTheRestShareOne() {
        var s = AuditSummaries(budget: .init(perNetwork: 0, overall: 0, topNetworks: 2, interval: 60))
        for i in 0..<30 { _ = s.admit(Self.failedLogin("10.0.1.1", user: "u\(i % 20)"), now: 0) }
        for _ in 0..<20 { _ = s.admit(Self.failedLogin("10.0.2.1"), now: 0) }
        for n in 3..<13 { _ = s.admit(Self.failedLogin("10.0.\(n).1", user: "root"), now: 0) }
        let rows = s.due(now: 0, force: true)
        #expect(rows.count == 3)
        let byNetwork = Dictionary(uniqueKeysWithValues: rows.map { ($0.peerAddress!, $0) })
        #expect(byNetwork["10.0.1.0/24"]?.count == 30)
        #expect(byNetwork["10.0.1.0/24"]?.identity == nil, "many users")
        #expect(byNetwork["10.0.1.0/24"]?.detail?.hasSuffix(", 4 more") == true, "16 names listed, 4 counted")
        #expect(byNetwork["10.0.2.0/24"]?.count == 20)
        #expect(byNetwork["10 other networks"]?.count == 10)
        #expect(byNetwork["10 other networks"]?.identity == "root")
    }

    // MARK: - In AuditLog

    static func opened(_ session: String, _ address: String = "198.51.100.7") -> AuditEvent {
        AuditEvent(kind: .connectionOpened, session: session, peerAddress: address, detail: "XX")
    }

    static func closed(_ session: String, _ address: String = "198.51.100.7", result: String = "ok") -> AuditEvent {
        AuditEvent(kind: .connectionClosed, session: session, peerAddress: address, result: result)
    }

    @Test func aSessionThatLedNowhereIsWrittenAsAPairWithinBudgetAndCountedPastIt() throws {
        let store = InMemoryStore()
        let log = AuditLog(store: store, flushInterval: .seconds(60), summaries: .init(perNetwork: 2, overall: 100, topNetworks: 16, interval: 3600))
        for i in 0..<5 {
            log.note(Self.opened("s-\(i)"))
            #expect(log.pendingCount == (i < 2 ? 2 * i : 4), "an opening is held until the session ends or does something")
            log.note(Self.closed("s-\(i)"))
        }
        // No handshake at all: only a close.
        log.note(Self.closed("s-x", result: "handshake_timeout"))
        try log.record(AuditEvent(kind: .streamOpened, session: "s-other", peerAddress: "192.0.2.1"))
        #expect(store.allAudit.map(\.kind) == [.connectionOpened, .connectionClosed, .connectionOpened, .connectionClosed, .streamOpened])
        #expect(log.strangerCounts.summarised == 4)
        log.writeSummaries(force: true)
        try log.record(AuditEvent(kind: .streamOpened, session: "s-other", peerAddress: "192.0.2.1"))
        let summary = try #require(store.allAudit.first { $0.count != nil })
        #expect(summary.kind == .connectionClosed)
        #expect(summary.count == 4)
        #expect(summary.peerAddress == "198.51.100.0/24")
        #expect(summary.detail == "summary of 4 event(s); results: ok×3, handshake_timeout×1")
    }

    @Test func aSessionThatDoesSomethingHasItsOpeningWrittenFirstAndItsCloseKept() throws {
        let store = InMemoryStore()
        let log = AuditLog(store: store, flushInterval: .seconds(60), summaries: .init(perNetwork: 0, overall: 0, topNetworks: 16, interval: 3600))
        log.note(Self.opened("s-1"))
        log.note(AuditEvent(kind: .authentication, session: "s-1", peerAddress: "198.51.100.7", identity: "alice", result: "ok"))
        log.note(Self.closed("s-1"))
        // A failed login is a stranger's row: with no budget it is counted, and so is the session.
        log.note(Self.opened("s-2"))
        log.note(Self.failedLogin("198.51.100.7"))
        log.note(AuditEvent(kind: .authentication, session: "s-2", peerAddress: "198.51.100.7", identity: "bob", result: "authentication_failed"))
        log.note(Self.closed("s-2"))
        log.flush()
        let rows = store.allAudit
        #expect(rows.filter { $0.count == nil }.map(\.kind) == [.connectionOpened, .authentication, .connectionClosed])
        #expect(rows.filter { $0.count == nil }.allSatisfy { $0.session == "s-1" })
        let summaries = rows.filter { $0.count != nil }
        #expect(Set(summaries.map(\.kind)) == [.authentication, .connectionClosed])
        #expect(summaries.first { $0.kind == .authentication }?.count == 2)
    }

    @Test func aGrantWritesTheHeldOpeningBeforeItsOwnRow() throws {
        let store = InMemoryStore()
        let log = AuditLog(store: store, flushInterval: .seconds(60))
        log.note(Self.opened("s-1"))
        try log.recordToken(AuditLogTests.token("T1"), AuditEvent(kind: .tokenIssued, session: "s-1", peerAddress: "198.51.100.7"))
        #expect(store.allAudit.map(\.kind) == [.connectionOpened, .tokenIssued])
        log.note(Self.closed("s-1"))
        log.flush()
        #expect(store.allAudit.map(\.kind) == [.connectionOpened, .tokenIssued, .connectionClosed])
        #expect(log.strangerCounts.summarised == 0)
    }

    @Test func refusedConnectionsAreSummarisedButStreamRefusalsAreNot() {
        #expect(AuditEvent(kind: .rateLimited, peerAddress: "192.0.2.1", result: "dropped").isStrangerNoise)
        #expect(!AuditEvent(kind: .rateLimited, peerAddress: "192.0.2.1", identity: "alice", result: "too_many_streams").isStrangerNoise)
        #expect(AuditEvent(kind: .tokenRefused, result: "token_invalid").isStrangerNoise)
        #expect(!AuditEvent(kind: .authentication, result: "ok").isStrangerNoise)
    }
}
