import Foundation

/// What `uspd`'s commands ask of a store beyond what the daemon's policy needs (`USPStore`):
/// listing and revoking a user's tokens, and reading the audit trail by identity, kind, session,
/// token or cursor. Both backends (SQLite, PostgreSQL) implement it, with the same results.
public protocol AdminStore: USPStore {
    /// Tokens of `identity`, oldest first; `activeAt` keeps only those neither revoked nor expired then.
    func tokens(identity: String, activeAt: Date?) throws(StoreError) -> [TokenRecord]
    /// Application tokens issued under the authorization token `authorizationTokenID`, oldest first.
    func tokens(issuedUnder authorizationTokenID: String) throws(StoreError) -> [TokenRecord]
    /// Revokes every unrevoked token whose identity is `identity`, and the application tokens
    /// issued under them. Returns the IDs revoked now.
    func revokeTokens(identity: String, at time: Date) throws(StoreError) -> [String]
    /// As `audit(identity:since:limit:)`, also filtering on `kinds`.
    func audit(identity: String?, kinds: Set<AuditEvent.Kind>?, since: Date?, limit: Int?) throws(StoreError) -> [AuditEvent]
    /// Events with an ID above `afterID`, in insertion order, at most `limit`.
    func audit(afterID: Int64, limit: Int) throws(StoreError) -> [AuditEvent]
    /// Every event of the server session `session`, oldest first.
    func audit(session: String) throws(StoreError) -> [AuditEvent]
    /// Every event that names `tokenID`, as the token or as the authorization token behind it, oldest first.
    func audit(tokenID: String) throws(StoreError) -> [AuditEvent]
    /// The chain of stream `stream` in server session `streamSession`, or nil when no event of
    /// that stream was recorded.
    func auditChain(streamSession: String, stream: Int64) throws(StoreError) -> AuditChain?
    /// Where the store is, for messages: a file path or a database URL without credentials.
    var location: String { get }
}

extension AdminStore {
    /// Every token of `identity`, oldest first.
    public func tokens(identity: String) throws(StoreError) -> [TokenRecord] {
        try tokens(identity: identity, activeAt: nil)
    }
}

/// How a stream traces back to a person: the stream's events, the application token it was
/// opened with, the authorization token that token was issued under, and the authentication
/// that earned the authorization token.
public struct AuditChain: Hashable, Sendable {
    /// `stream_opened` and `stream_closed` of the stream, oldest first.
    public var streamEvents: [AuditEvent]
    /// `token_issued` of the application token the stream was opened with.
    public var applicationTokenIssued: AuditEvent?
    /// `token_issued` of the authorization token behind it.
    public var authorizationTokenIssued: AuditEvent?
    /// The successful `authentication` in the session that received the authorization token,
    /// the last one before it was issued.
    public var authentication: AuditEvent?
    /// The identity the chain ends at (from the authentication, else from the token events).
    public var identity: String?

    public init(streamEvents: [AuditEvent], applicationTokenIssued: AuditEvent?, authorizationTokenIssued: AuditEvent?,
                authentication: AuditEvent?, identity: String?) {
        self.streamEvents = streamEvents
        self.applicationTokenIssued = applicationTokenIssued
        self.authorizationTokenIssued = authorizationTokenIssued
        self.authentication = authentication
        self.identity = identity
    }
}

