import Foundation
import Logging
import NIOCore
import USPCore
import USPStore

/// Ends the live streams of tokens that were revoked outside this daemon: by `uspd user remove`
/// (which revokes the user's tokens), or by another uspd process on the same database. Revocations
/// made through a session (index 0) already end their streams at once; seeing them again here is
/// harmless.
///
/// `poll()` is called about once a second (every 30 s as a safety net where the store pushes
/// revocations, `RevocationFeed`, and each time that feed reconnects); calls are serialised. It asks the store for tokens revoked since a little
/// before the last revocation it saw (the overlap covers a revocation committed late in the same
/// millisecond), skips those it has already handled, and hands the rest to the session registry.
public final class RevocationWatcher: @unchecked Sendable {
    let store: any USPStore
    let registry: SessionRegistry
    let logger: Logger
    /// Only touched by `poll()`, under `lock`.
    private let lock = NSLock()
    private var since: Date
    private var handled: [String: Date] = [:]
    static let overlap: TimeInterval = 5

    public init(store: any USPStore, registry: SessionRegistry, logger: Logger, startingAt start: Date = Date()) {
        self.store = store
        self.registry = registry
        self.logger = logger
        since = start
    }

    /// Returns the token IDs newly seen revoked (their streams are being ended).
    @discardableResult
    public func poll(on loop: any EventLoop) -> [String] {
        lock.lock()
        defer { lock.unlock() }
        let found: (ids: [String], latest: Date?)
        do {
            found = try store.tokensRevoked(after: since.addingTimeInterval(-Self.overlap))
        } catch {
            logger.error("cannot read revocations from the store: \(error)")
            return []
        }
        let now = Date()
        let fresh = found.ids.filter { handled[$0] == nil }
        for id in fresh { handled[id] = now }
        if let latest = found.latest, latest > since { since = latest }
        handled = handled.filter { now.timeIntervalSince($0.value) < Self.overlap * 4 }
        let ids = Set(fresh.compactMap(TokenProof.TokenID.init(text:)))
        if !ids.isEmpty {
            logger.info("\(ids.count) token(s) revoked in the store; ending their streams")
            registry.revoke(ids, on: loop)
        }
        return fresh
    }
}
