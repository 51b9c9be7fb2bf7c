/// A store that pushes revocations as they commit, wherever they were made (another uspd node,
/// an admin command): the daemon ends the streams they cover at once instead of at its next poll.
/// PostgreSQL does, with LISTEN/NOTIFY; SQLite does not (the daemon polls it).
public protocol RevocationFeed: Sendable {
    /// Starts following. `revoked` gets the IDs of tokens revoked anywhere, as their transaction
    /// commits; `connected` is called each time the feed (re)connects, before any notification
    /// that follows it, so the caller can read what it may have missed while the feed was down.
    /// Both run on a thread of the store's own. Following stops when the returned value's `stop`
    /// is called.
    func followRevocations(revoked: @escaping @Sendable ([String]) -> Void,
                           connected: @escaping @Sendable () -> Void) -> any RevocationFollowing
}

/// A running `followRevocations`.
public protocol RevocationFollowing: Sendable {
    func stop()
}
