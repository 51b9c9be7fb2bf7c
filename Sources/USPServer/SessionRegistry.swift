import NIOCore
import Synchronization
import USPCore
import USPNIO

/// The live sessions of the daemon, so that an invalidation on one session ends the token's
/// streams on all of them, and a drain can tell every session `shutting_down`.
///
/// Each session is reached on its own event loop (`ServerSessionHandler` is loop-bound).
/// Revocation is therefore asynchronous but bounded: one task on each session's event loop, queued
/// as soon as the invalidation is committed to the store, so the streams are reset (RESET
/// `token_revoked`, the application stopped) within one event-loop turn; the end-to-end test
/// asserts well under a second. `revoke` returns a future that completes once every session has
/// done so.
public final class SessionRegistry: Sendable {
    private struct Entry: Sendable {
        let loop: any EventLoop
        let handler: NIOLoopBound<ServerSessionHandler>
    }

    private let sessions = Mutex<[String: Entry]>([:])
    /// Sessions handed to their application relay-free: reached through a control line instead.
    public let relayFree = RelayFreeSessions()

    public init() {}

    /// Call on the handler's event loop.
    public func register(_ handler: ServerSessionHandler, on loop: any EventLoop) {
        let entry = Entry(loop: loop, handler: NIOLoopBound(handler, eventLoop: loop))
        sessions.withLock { $0[handler.serverSessionID] = entry }
    }

    public func remove(_ serverSessionID: String) {
        _ = sessions.withLock { $0.removeValue(forKey: serverSessionID) }
    }

    public var count: Int { sessions.withLock { $0.count } }

    private var snapshot: [Entry] { sessions.withLock { Array($0.values) } }

    /// Ends, on every live session, the streams opened under these tokens (or under application
    /// tokens issued from them), with RESET `code` (`token_revoked`; `token_expired` when a login
    /// expired). Completes when every session has done so.
    @discardableResult
    public func revoke(_ ids: Set<TokenProof.TokenID>, code: USPError.Code = .tokenRevoked, on loop: any EventLoop) -> EventLoopFuture<Void> {
        guard !ids.isEmpty else { return loop.makeSucceededVoidFuture() }
        relayFree.revoke(ids, code: code)
        let futures = snapshot.map { entry in
            entry.loop.submit { entry.handler.value.revoke(tokenIDs: ids, code: code) }
        }
        return EventLoopFuture.andAllComplete(futures, on: loop)
    }

    /// What every live session looks like now, each read on its own event loop.
    public func snapshots(on loop: any EventLoop) -> EventLoopFuture<[ServerSessionSnapshot]> {
        let futures = snapshot.map { entry in entry.loop.submit { entry.handler.value.snapshot() } }
        return EventLoopFuture.whenAllComplete(futures, on: loop).map { results in
            results.compactMap { try? $0.get() }.sorted { $0.age > $1.age }
        }
    }

    /// Closes one session with a CLOSE carrying `code`, and tells the relay-free sessions it
    /// handed off to reset. Succeeds with what the session looked like just before (nil when no
    /// such session is live; `relayFree` counts the relay-free sessions told).
    public func close(_ serverSessionID: String, code: USPError.Code,
                      on loop: any EventLoop) -> EventLoopFuture<(session: ServerSessionSnapshot?, relayFree: Int)> {
        let relayFreeTold = relayFree.end(session: serverSessionID, code: code)
        guard let entry = sessions.withLock({ $0[serverSessionID] }) else {
            return loop.makeSucceededFuture((nil, relayFreeTold))
        }
        return entry.loop.submit {
            let before = entry.handler.value.snapshot()
            entry.handler.value.close(code: code)
            return (before, relayFreeTold)
        }.hop(to: loop)
    }

    /// Sends CLOSE with `code` to every live session (e.g. `shutting_down`).
    @discardableResult
    public func closeAll(code: USPError.Code, on loop: any EventLoop) -> EventLoopFuture<Void> {
        let futures = snapshot.map { entry in
            entry.loop.submit { entry.handler.value.close(code: code) }
        }
        return EventLoopFuture.andAllComplete(futures, on: loop)
    }
}
