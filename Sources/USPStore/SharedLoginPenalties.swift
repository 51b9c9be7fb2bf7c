import Foundation

/// One key a failed login counts under, with the longest window it may open (seconds).
public struct LoginPenalty: Hashable, Sendable {
    public var key: String
    public var cap: Double

    public init(key: String, cap: Double) {
        self.key = key
        self.cap = cap
    }
}

/// Failed-login penalty windows kept in the store, so that a guesser who spreads attempts over
/// the nodes of a fleet meets the same doubling windows as on one node (uspd's `LoginThrottle`
/// keeps the same windows in memory and asks these as well). PostgreSQL keeps them; a single
/// SQLite daemon needs only its memory.
public protocol SharedLoginPenalties: Sendable {
    /// Records one failure under each of `keys` at `now`. A key's count starts again at 1 when its
    /// previous failure is more than `forgetAfter` seconds old; its window then ends
    /// min(cap, base · 2^(count − 1)) seconds after `now`. Returns when each key's window ends.
    func recordLoginFailure(_ keys: [LoginPenalty], base: Double, forgetAfter: Double, now: Date) throws(StoreError) -> [String: Date]
    /// The end of each window among `keys` that is still open at `now` (closed ones are absent).
    func openLoginPenalties(_ keys: [String], now: Date) throws(StoreError) -> [String: Date]
    /// Forgets `keys` (a successful login clears its windows).
    func clearLoginPenalties(_ keys: [String]) throws(StoreError)
    /// Deletes the keys whose last failure is older than `time`; returns how many.
    func purgeLoginPenalties(before time: Date) throws(StoreError) -> Int
}
