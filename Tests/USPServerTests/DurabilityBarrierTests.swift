import Dispatch
import Foundation
import Synchronization
import Testing
import USPConfig
import USPCore
import USPNIO
import USPTestSupport
@testable import USPServer
import USPStore

/// A grant waits for the disk without stalling the event loop: with the store's sync made slow,
/// a login on one session is held until its token is on disk while another session on the same
/// (single) event loop is served meanwhile. A failed sync never lets the grant out.
@Suite("Durable grants off the event loop", .serialized)
struct DurabilityBarrierTests {
    /// Runs `body` on a thread of its own and returns how long it took, once it is done.
    private static func timed(_ body: @escaping @Sendable () throws -> Void) -> (DispatchSemaphore, () -> (Double, (any Error)?)) {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<(Double, (any Error)?)>((0, Optional<any Error>.none))
        Thread.detachNewThread {
            let start = ServerClock.monotonic()
            var failure: (any Error)?
            do { try body() } catch { failure = error }
            result.withLock { $0 = (ServerClock.monotonic() - start, failure) }
            done.signal()
        }
        return (done, { result.withLock { $0 } })
    }

    /// A started daemon with one event loop, so that a stalled loop would stall every session.
    private static func singleLoopDaemon() async throws -> (InMemoryStore, TestDaemon) {
        let store = Fixtures.store()
        let d = try TestDaemon(backing: store, threads: 1)
        try await d.start()
        return (store, d)
    }

    @Test func aLoginWaitingForTheDiskDoesNotStallAnotherSessionOnTheSameLoop() async throws {
        let (store, d) = try await Self.singleLoopDaemon()
        defer { Task { try await d.stop() } }
        let slow = try d.menuClient()
        store.syncDelay = 3.0
        let syncsBefore = store.syncs
        let loggedIn = Mutex(false)
        let handed = ClientOnAnotherThread(slow)
        let (loginDone, loginResult) = Self.timed {
            try handed.client.login("bob", "hunter2")
            loggedIn.withLock { $0 = handed.client.log.token(at: 0) != nil }
        }
        // Everything below blocks a thread of its own: a task polling the store could be woken
        // too late on a busy machine, after the slow sync had already ended.
        let (checked, checks) = Self.timed {
            // Wait until the login's sync has started (the token is committed, not yet on disk).
            guard store.syncStarted.wait(timeout: .now() + 10) == .success else { throw Timeout() }
            let started = ServerClock.monotonic()
            // Meanwhile a second client on the same event loop: handshake and menu.
            let other = try SocketClient(port: d.port4, mode: .knownServer(serverKey: Fixtures.serverKey.publicKey, clientStatic: Fixtures.otherClientKey))
            try other.start()
            #expect(try other.pumpMenu())
            let served = ServerClock.monotonic() - started
            #expect(served < 0.75, "the other session waited \(served) s for the disk")
            #expect(store.syncEnded.wait(timeout: .now()) == .timedOut, "the login's sync was still running")
            #expect(!loggedIn.withLock { $0 }, "the login must still be waiting for its token to be on disk")
        }
        checked.wait()
        #expect(checks().1 == nil, "\(String(describing: checks().1))")
        #expect(store.syncs > syncsBefore)

        loginDone.wait()
        let (took, error) = loginResult()
        #expect(error == nil)
        #expect(loggedIn.withLock { $0 })
        #expect(took >= 2.9, "the token left after \(took) s, before the disk had it")
    }

    private struct Timeout: Error {}

    @Test func aGrantWhoseSyncFailsNeverLeaves() async throws {
        let (store, d) = try await Self.singleLoopDaemon()
        defer { Task { try await d.stop() } }
        let client = try d.menuClient()
        store.failSync = true
        let menus = client.log.menus.count
        try? client.login("bob", "hunter2")
        // The connection ends without the reply: no token, no new menu.
        #expect(try client.pump(timeout: 3) { $0.notes.contains { if case .closed = $0 { return true } else { return false } } })
        #expect(client.log.token(at: 0) == nil)
        #expect(client.log.menus.count == menus)

        // The daemon goes on: once the disk works again, logins succeed.
        store.failSync = false
        let again = try SocketClient(port: d.port4)
        try again.start()
        #expect(try again.pumpMenu())
        try again.login("bob", "hunter2")
        #expect(again.log.token(at: 0) != nil)
    }

    @Test func anApplicationStartsOnlyOnceItsStreamOpenedRowIsOnDisk() async throws {
        let (store, d) = try await Self.singleLoopDaemon()
        defer { Task { try await d.stop() } }
        let client = try d.menuClient()
        let echo = try #require(client.log.index(of: "echo"))
        try client.request([echo: [:]])
        let token = try #require(client.log.token(at: echo))

        store.syncDelay = 1.0
        let started = ServerClock.monotonic()
        let stream = try client.session.openStream(applicationToken: token)
        try client.flush()
        try client.write(stream, "held until durable")
        #expect(try client.pump(timeout: 5) { _ in client.text(stream) == "held until durable" })
        let took = ServerClock.monotonic() - started
        #expect(took >= 0.9, "the application answered after \(took) s, before its stream_opened row was on disk")
        let opened = store.allAudit.filter { $0.kind == .streamOpened }
        #expect(opened.count == 1)
    }
}

/// A blocking test client used by one thread at a time: handed to the thread that logs in, and
/// read again only after that thread is done.
private final class ClientOnAnotherThread: @unchecked Sendable {
    let client: SocketClient
    init(_ client: SocketClient) { self.client = client }
}
