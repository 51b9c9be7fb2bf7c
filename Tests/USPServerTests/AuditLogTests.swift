import Foundation
import Testing
@testable import USPServer
import USPStore

/// AuditLog's group commit: noted events wait for the next durable write or the flush timer;
/// `record` and `recordToken` write everything queued first, in one transaction, and fail closed.
@Suite("AuditLog")
struct AuditLogTests {
    static func event(_ kind: AuditEvent.Kind, _ detail: String) -> AuditEvent {
        AuditEvent(time: Date(), kind: kind, session: "s-1", detail: detail)
    }

    static func token(_ id: String) -> TokenRecord {
        TokenRecord(id: id, kind: .authorization, publicKey: "key-\(id)", identity: "alice", issuedAt: Date(),
                    expiresAt: Date().addingTimeInterval(60))
    }

    @Test func notedEventsWaitForTheNextDurableWriteInOrder() throws {
        let store = InMemoryStore()
        let log = AuditLog(store: store, flushInterval: .seconds(60))
        log.note(Self.event(.connectionOpened, "a"))
        log.note(Self.event(.tokenUsed, "b"))
        #expect(store.allAudit.isEmpty)
        #expect(log.pendingCount == 2)
        try log.record(Self.event(.streamOpened, "c"))
        #expect(store.allAudit.map(\.detail) == ["a", "b", "c"])
        #expect(log.pendingCount == 0)
    }

    @Test func aTokenIsWrittenWithWhatWasQueuedBeforeIt() throws {
        let store = InMemoryStore()
        let log = AuditLog(store: store, flushInterval: .seconds(60))
        log.note(Self.event(.authentication, "login ok"))
        try log.recordToken(Self.token("T1"), Self.event(.tokenIssued, "issued"))
        #expect(store.allAudit.map(\.detail) == ["login ok", "issued"])
        #expect(try store.token(id: "T1") != nil)
    }

    @Test func theTimerWritesNotedEventsWithoutADurableWrite() async throws {
        let store = InMemoryStore()
        let log = AuditLog(store: store, flushInterval: .milliseconds(20))
        log.note(Self.event(.connectionClosed, "closed"))
        for _ in 0..<200 where store.allAudit.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        #expect(store.allAudit.map(\.detail) == ["closed"])
        #expect(log.pendingCount == 0)
    }

    @Test func aFailedRecordRefusesAndKeepsTheQueueForLater() throws {
        let store = InMemoryStore()
        let log = AuditLog(store: store, flushInterval: .seconds(60))
        log.note(Self.event(.connectionOpened, "a"))
        store.failAudit = true
        #expect(throws: (any Error).self) { try log.record(Self.event(.streamOpened, "refused")) }
        #expect(throws: (any Error).self) { try log.recordToken(Self.token("T2"), Self.event(.tokenIssued, "refused")) }
        #expect(try store.token(id: "T2") == nil)
        // The refused events are gone (nothing was granted); what was queued before them stays.
        #expect(log.pendingCount == 1)
        store.failAudit = false
        log.flush()
        #expect(store.allAudit.map(\.detail) == ["a"])
    }

    @Test func zeroIntervalWritesThrough() {
        let store = InMemoryStore()
        let log = AuditLog(store: store, flushInterval: .zero)
        log.note(Self.event(.connectionOpened, "now"))
        #expect(store.allAudit.map(\.detail) == ["now"])
    }
}

/// Durable writes from concurrent callers share commits, and each caller returns only after its
/// own rows are in the store.
@Suite("GroupCommit")
struct GroupCommitTests {
    @Test func concurrentCallersShareCommitsAndSeeTheirRows() throws {
        let counting = CountingStore()
        let group = GroupCommit(store: counting)
        let threads = 16
        let done = DispatchGroup()
        for i in 0..<threads {
            done.enter()
            Thread.detachNewThread {
                try? group.commit([.audit(AuditEvent(time: Date(), kind: .streamOpened, detail: "t\(i)"))])
                // Our row is there as soon as commit returns.
                if !counting.allAudit.contains(where: { $0.detail == "t\(i)" }) { counting.missing.withLock { $0 += 1 } }
                done.leave()
            }
        }
        done.wait()
        #expect(counting.allAudit.count == threads)
        #expect(counting.missing.withLock { $0 } == 0)
        // 16 callers against a 20 ms commit: far fewer than 16 commits.
        #expect(counting.commits.withLock { $0 } < threads)
    }

    @Test func aFailedCommitFailsItsCallers() {
        let counting = CountingStore()
        counting.failAudit = true
        let group = GroupCommit(store: counting)
        #expect(throws: (any Error).self) { try group.commit([.audit(AuditEvent(time: Date(), kind: .streamOpened))]) }
        counting.failAudit = false
        #expect(throws: Never.self) { try group.commit([.audit(AuditEvent(time: Date(), kind: .streamOpened))]) }
    }
}

import Synchronization

/// InMemoryStore whose commits take 20 ms and are counted.
final class CountingStore: InMemoryStore, @unchecked Sendable {
    let commits = Mutex(0)
    let missing = Mutex(0)
    override func commit(_ writes: [StoreWrite], durable: Bool) throws {
        commits.withLock { $0 += 1 }
        Thread.sleep(forTimeInterval: 0.02)
        for case .audit(let e) in writes { try appendAudit(e) }
        for case .token(let t) in writes { try insertToken(t) }
    }
}
