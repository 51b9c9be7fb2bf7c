import Foundation
import Synchronization

/// When the logins behind this node's streams expire, so that a login's expiry ends the streams
/// it covers (RESET `token_expired`) as its revocation does. Policy notes a login each time it
/// checks one behind a stream (an application token issued under it, a begin by name); the daemon
/// asks every second which have expired, and forgets them as it ends their streams. Every node
/// keeps its own: each ends its own streams.
public final class LoginExpiries: Sendable {
    private let expiries = Mutex<[String: Date]>([:])

    public init() {}

    /// `login` (a token ID) expires at `expiresAt`.
    public func note(_ login: String, expiresAt: Date) {
        expiries.withLock { $0[login] = expiresAt }
    }

    /// The logins expired at `now`, forgotten from here on.
    public func takeExpired(now: Date) -> [String] {
        expiries.withLock { all in
            let expired = all.filter { $0.value <= now }.map(\.key)
            for id in expired { all[id] = nil }
            return expired.sorted()
        }
    }

    public var count: Int { expiries.withLock { $0.count } }
}
