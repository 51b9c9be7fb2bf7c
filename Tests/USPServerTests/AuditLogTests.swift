import Foundation
import NIOCore
import NIOPosix
import Testing
import USPTestSupport
@testable import USPServer
import USPStore

/// AuditLog: noted events wait for the next grant's commit or the flush timer; `record` and
/// `recordToken` write everything queued first, in one transaction, and fail closed.
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

    /// Notes flushed by the timer are committed at once but synced later, once for many flushes:
    /// a steady trickle of notes costs at most one fsync per `lazySyncInterval`.
    @Test func flushedNotesAreSyncedLazilyOncePerInterval() async throws {
        let store = InMemoryStore()
        // The interval is far longer than any test run, so a starved scheduler (2 cores, the whole
        // suite in parallel) cannot let it pass between the flushes and make the count wrong.
        let log = AuditLog(store: store, flushInterval: .milliseconds(10), lazySyncInterval: .seconds(86_400))
        for i in 0..<5 {
            log.note(Self.event(.connectionClosed, "n\(i)"))
            let deadline = ContinuousClock.now + .seconds(5)
            while store.allAudit.count <= i, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(store.allAudit.count == 5)
        #expect(store.commits == 5)
        #expect(store.syncs == 0, "a flush does not fsync by itself")
        #expect(log.lazySyncIsScheduled, "five flushes wait for one sync")
        // At shutdown, flush syncs at once.
        log.note(Self.event(.connectionClosed, "last"))
        log.flush()
        #expect(store.syncs == 1)
        #expect(log.pendingCount == 0)
    }

    @Test func theLazySyncComesAfterTheInterval() async throws {
        let store = InMemoryStore()
        let log = AuditLog(store: store, flushInterval: .milliseconds(5), lazySyncInterval: .milliseconds(100))
        log.note(Self.event(.connectionClosed, "n"))
        let deadline = ContinuousClock.now + .seconds(10)
        while store.syncs == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(store.allAudit.count == 1)
        #expect(store.syncs == 1)
        #expect(!log.lazySyncIsScheduled)
    }

    /// A begin by name's token is queued with its row, not committed: the stream's record, right
    /// after, commits both with it in one transaction.
    @Test func aBeginByNameTokenWaitsForItsStreamsRecord() throws {
        let store = InMemoryStore()
        let log = AuditLog(store: store, flushInterval: .seconds(60))
        log.note(Self.event(.tokenUsed, "login"))
        try log.recordToken(Self.token("B1"), Self.event(.tokenIssued, "by name"), durable: false)
        #expect(try store.token(id: "B1") == nil)
        #expect(store.allAudit.isEmpty)
        #expect(log.pendingCount == 3)
        try log.record(Self.event(.streamOpened, "opened"))
        #expect(try store.token(id: "B1") != nil)
        #expect(store.allAudit.map(\.detail) == ["login", "by name", "opened"])
        #expect(store.commits == 1)
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
        log.note(Self.event(.tokenUsed, "now"))
        #expect(store.allAudit.map(\.detail) == ["now"])
        // An opening waits for the session to do something (or to end).
        log.note(AuditEvent(kind: .connectionOpened, session: "s-2", detail: "opened"))
        #expect(store.allAudit.map(\.detail) == ["now"])
        log.note(AuditEvent(kind: .authentication, session: "s-2", result: "ok", detail: "login"))
        #expect(store.allAudit.map(\.detail) == ["now", "opened", "login"])
    }
}

/// Grants are committed at once and made durable off the event loop: concurrent waiters share one
/// sync, each completes only after a sync that started after it asked, and a failed sync fails
/// exactly the waiters it covered.
@Suite("GroupSync and durability barriers")
struct GroupSyncTests {
    @Test func concurrentWaitersShareSyncsAndEachWaitsForASyncStartedAfterIt() throws {
        let store = InMemoryStore()
        store.syncDelay = 0.02
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let sync = GroupSync(store: store)
        let callers = 16
        let early = Mutex(0)
        let done = DispatchGroup()
        for _ in 0..<callers {
            done.enter()
            Thread.detachNewThread {
                let asked = store.syncs
                do {
                    try sync.whenDurable(on: group.next()).wait()
                    // A sync that was already running when we asked does not count for us.
                    if store.syncs <= asked { early.withLock { $0 += 1 } }
                } catch {
                    early.withLock { $0 += 1 }
                }
                done.leave()
            }
        }
        done.wait()
        #expect(early.withLock { $0 } == 0)
        // 16 waiters against a 20 ms sync: far fewer than 16 syncs.
        #expect(store.syncs < callers)
        #expect(store.syncs >= 1)
    }

    @Test func aFailedSyncFailsItsWaitersAndTheNextOneSucceeds() throws {
        let store = InMemoryStore()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let sync = GroupSync(store: store)
        store.failSync = true
        #expect(throws: (any Error).self) { try sync.whenDurable(on: group.next()).wait() }
        store.failSync = false
        #expect(throws: Never.self) { try sync.whenDurable(on: group.next()).wait() }
    }

    @Test func aRecordedGrantMarksItsSessionOnceAndABeginByNameTokenDoesNot() throws {
        let store = InMemoryStore()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let log = AuditLog(store: store, flushInterval: .seconds(60))
        #expect(log.durabilityBarrier(session: "s-1", on: loop) == nil)
        try log.recordToken(AuditLogTests.token("T9"), AuditLogTests.event(.tokenIssued, "by name"), durable: false)
        #expect(log.durabilityBarrier(session: "s-1", on: loop) == nil)
        // Committed (visible) with the stream's record, durable once the barrier succeeds.
        try log.record(AuditLogTests.event(.streamOpened, "opened"))
        #expect(store.allAudit.map(\.detail) == ["by name", "opened"])
        let barrier = try #require(log.durabilityBarrier(session: "s-1", on: loop))
        try barrier.wait()
        #expect(store.syncs >= 1)
        #expect(log.durabilityBarrier(session: "s-1", on: loop) == nil)
        // Another session's grant is its own.
        #expect(log.durabilityBarrier(session: "s-2", on: loop) == nil)
    }
}

import Synchronization
