/// The one decision a client session cannot make alone: whether to trust a server key learned in XX.
public protocol ClientSessionDelegate {
    /// Called on first contact (XX) with the server's static key. Return false to refuse it
    /// (for instance, it differs from a pinned or known key): the session ends with `server_key_mismatch`.
    func acceptServerKey(_ key: [UInt8]) -> Bool
}

/// A delegate that trusts any key (trust on first use without memory): for tests and demos.
public struct TrustAnyServerKey: ClientSessionDelegate {
    public init() {}
    public func acceptServerKey(_ key: [UInt8]) -> Bool { true }
}
