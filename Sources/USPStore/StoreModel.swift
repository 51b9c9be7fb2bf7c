import Foundation

/// A user of the daemon. Passwords are stored as scrypt hashes (`PasswordHash`), never in clear.
public struct UserRecord: Hashable, Sendable {
    public var name: String
    public var groups: [String]
    /// `scrypt$N$r$p$<salt b64>$<hash b64>`, or nil for key-only users.
    public var passwordHash: String?
    /// Base64url raw public keys: X25519 (Noise static, method `noise_static`) or Ed25519 (`publickey`).
    public var publicKeys: [String]
    public var createdAt: Date

    public init(name: String, groups: [String] = [], passwordHash: String? = nil, publicKeys: [String] = [], createdAt: Date = Date()) {
        self.name = name
        self.groups = groups
        self.passwordHash = passwordHash
        self.publicKeys = publicKeys
        self.createdAt = createdAt
    }
}

/// A token as stored: its ID and public key, never the secret (docs/PROTOCOL.md §6.4).
public struct TokenRecord: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable { case authorization, application }
    /// Base64url of the 16-byte token ID.
    public var id: String
    public var kind: Kind
    /// Base64url Ed25519 public key that checks presentations.
    public var publicKey: String
    public var identity: String?
    /// Application tokens: the application, the client address they are bound to, the request body
    /// (JSON text) and the authorization token they were issued under.
    public var application: String?
    public var peerAddress: String?
    public var requestJSON: String?
    public var authorizationTokenID: String?
    public var issuedAt: Date
    public var expiresAt: Date
    public var revokedAt: Date?
    /// A brokered application token (connection brokering): the address of the client it was
    /// issued for, which is also `peerAddress`. `identity` is then the broker's, and
    /// `authorizationTokenID` the broker's login. nil: issued to the caller itself.
    public var brokeredFor: String?

    public init(id: String, kind: Kind, publicKey: String, identity: String?, application: String? = nil,
                peerAddress: String? = nil, requestJSON: String? = nil, authorizationTokenID: String? = nil,
                issuedAt: Date, expiresAt: Date, revokedAt: Date? = nil, brokeredFor: String? = nil) {
        self.brokeredFor = brokeredFor
        self.id = id
        self.kind = kind
        self.publicKey = publicKey
        self.identity = identity
        self.application = application
        self.peerAddress = peerAddress
        self.requestJSON = requestJSON
        self.authorizationTokenID = authorizationTokenID
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }
}

/// One line of the audit trail. `kind` says what happened; the other fields are filled as they apply.
public struct AuditEvent: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        case connectionOpened = "connection_opened"
        case connectionClosed = "connection_closed"
        case authentication
        case tokenIssued = "token_issued"
        case tokenUsed = "token_used"
        case tokenInvalidated = "token_invalidated"
        case tokenRefused = "token_refused"
        case streamOpened = "stream_opened"
        case streamClosed = "stream_closed"
        /// A dedicated connection's stream was handed to its application relay-free (the TCP socket
        /// and the transport keys): uspd is out of its data path from here on.
        case streamHandedOff = "stream_handed_off"
        /// A limit refused a connection or a stream (`result`: the code the client got, or
        /// `dropped` for a connection closed before its handshake; `detail`: which limit).
        case rateLimited = "rate_limited"
        /// An exec'd application's process ended by a signal or with a non-zero status, other
        /// than after uspd stopped it (`result`: `SIGSEGV` or `status 3`; `detail` with the pid).
        case applicationExited = "application_exited"
        /// Rows that were not written: `count` of them, `detail` says why (a backlog over its
        /// limit while the store failed, or a full disk with the space reserve in use).
        case auditGap = "audit_gap"
        /// An administrator ended a session (`uspd sessions kill`); `detail` names who, by uid
        /// and process.
        case sessionKilled = "session_killed"
    }
    public var id: Int64?
    public var time: Date
    public var kind: Kind
    /// The server session ID (`s-…`) it belongs to.
    public var session: String?
    public var peerAddress: String?
    /// `SHA256:…` fingerprint of the client's static key, when it has one.
    public var clientKey: String?
    public var identity: String?
    /// Authentication method (`password`, `publickey`, `noise_static`, `authorization_token`).
    public var method: String?
    /// `ok` or an error code name.
    public var result: String?
    public var tokenID: String?
    /// For application tokens and streams: the authorization token they trace back to.
    public var authorizationTokenID: String?
    public var application: String?
    public var stream: Int64?
    public var bytesIn: Int64?
    public var bytesOut: Int64?
    public var durationMS: Int64?
    public var detail: String?
    /// A summary row stands for `count` events of its kind from the network in `peerAddress`
    /// (`192.0.2.0/24`), from `time` over `durationMS` (uspd summarises what strangers cause in
    /// bulk). nil: one event.
    public var count: Int64?
    /// The uspd that wrote the row (its `node_name`, the host name by default): in a fleet sharing
    /// one database, which node saw the event. nil in rows written before nodes were recorded, or
    /// by a store opened without a node name.
    public var node: String?

    public init(time: Date = Date(), kind: Kind, session: String? = nil, peerAddress: String? = nil, clientKey: String? = nil,
                identity: String? = nil, method: String? = nil, result: String? = nil, tokenID: String? = nil,
                authorizationTokenID: String? = nil, application: String? = nil, stream: Int64? = nil,
                bytesIn: Int64? = nil, bytesOut: Int64? = nil, durationMS: Int64? = nil, detail: String? = nil) {
        self.time = time
        self.kind = kind
        self.session = session
        self.peerAddress = peerAddress
        self.clientKey = clientKey
        self.identity = identity
        self.method = method
        self.result = result
        self.tokenID = tokenID
        self.authorizationTokenID = authorizationTokenID
        self.application = application
        self.stream = stream
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.durationMS = durationMS
        self.detail = detail
    }
}

/// One row of a batch written in one transaction (`USPStore.commit`).
public enum StoreWrite: Sendable {
    case token(TokenRecord)
    case audit(AuditEvent)
}

/// Everything the daemon persists. Writes are durable when they return (SQLite: WAL with
/// `synchronous=FULL`); audit of security events fails closed: if it throws, the action fails.
public protocol USPStore: Sendable {
    func user(named name: String) throws -> UserRecord?
    func users() throws -> [UserRecord]
    func upsertUser(_ user: UserRecord) throws
    /// Returns false if there was no such user.
    func removeUser(named name: String) throws -> Bool

    func insertToken(_ token: TokenRecord) throws
    func token(id: String) throws -> TokenRecord?
    /// Marks tokens revoked (and application tokens issued under revoked authorization tokens);
    /// returns the IDs actually revoked now.
    func revokeTokens(ids: [String], at time: Date) throws -> [String]
    /// The same; `durable: false` returns before the disk has it (`syncDurably` makes it durable).
    func revokeTokens(ids: [String], at time: Date, durable: Bool) throws -> [String]
    /// Deletes tokens that expired before `time` (audit rows keep their IDs).
    func purgeExpiredTokens(before time: Date) throws -> Int
    /// Tokens revoked after `time`, oldest revocation first, and the latest revocation time.
    func tokensRevoked(after time: Date) throws -> (ids: [String], latest: Date?)

    func appendAudit(_ event: AuditEvent) throws
    /// Newest last. Filters are optional: `identity` matches exactly, `since` is inclusive, and
    /// `limit` keeps the newest `limit` matching events (like `tail -n`), still returned oldest first.
    func audit(identity: String?, since: Date?, limit: Int?) throws -> [AuditEvent]
    /// How many brokered application tokens `identity` was issued at or after `since`, revoked
    /// ones included (a broker's tokens-per-minute limit; in a fleet, counted over every node).
    func brokeredTokenCount(identity: String, since: Date) throws -> Int

    // Each of the following has a default below written with the requirements above, so a test
    // double that implements only those still conforms.

    /// The user one of whose `publicKeys` is `publicKey` (noise_static and publickey logins).
    func user(publicKey: String) throws -> UserRecord?
    /// Inserts a token and its `token_issued` audit event in one transaction: neither or both
    /// (a token whose issue was not audited is never handed out).
    func insertToken(_ token: TokenRecord, audit event: AuditEvent) throws
    /// Inserts a token and audit events (the last its `token_issued`) in one transaction.
    func insertToken(_ token: TokenRecord, audit events: [AuditEvent]) throws
    /// Appends several events in one transaction: all or none.
    func appendAudit(_ events: [AuditEvent]) throws
    /// Writes `writes` in one transaction: all or none. `durable: false` lets the commit return
    /// before the disk has it (it still survives the process being killed; a later durable commit
    /// makes it durable too) — only for rows whose loss in a power cut grants nothing.
    func commit(_ writes: [StoreWrite], durable: Bool) throws
    /// Makes every transaction committed before the call durable (on disk), including those
    /// committed with `durable: false`. Blocking, and it never holds the writer while it waits
    /// for the disk: the daemon calls it off its event loops, so a grant waits for the disk
    /// without stalling any other session.
    func syncDurably() throws
    /// Deletes audit rows older than `olderThan`, then the oldest rows while the trail takes more
    /// than `maxBytes`; never a row at or after `keepAfter`. Returns what it deleted and what is left.
    func pruneAudit(olderThan: Date?, maxBytes: Int64?, keepAfter: Date) throws -> AuditPruning
    /// The audit trail's rows and (approximate) bytes on disk.
    func auditFootprint() throws -> (rows: Int64, bytes: Int64)
}

/// What `pruneAudit` did.
public struct AuditPruning: Equatable, Sendable {
    public var deleted: Int64
    public var rowsLeft: Int64
    public var bytesLeft: Int64
    public init(deleted: Int64, rowsLeft: Int64, bytesLeft: Int64) {
        self.deleted = deleted
        self.rowsLeft = rowsLeft
        self.bytesLeft = bytesLeft
    }
}

extension USPStore {
    public func user(publicKey: String) throws -> UserRecord? {
        try users().first { $0.publicKeys.contains(publicKey) }
    }

    public func insertToken(_ token: TokenRecord, audit event: AuditEvent) throws {
        try insertToken(token, audit: [event])
    }

    public func insertToken(_ token: TokenRecord, audit events: [AuditEvent]) throws {
        try appendAudit(events)
        try insertToken(token)
    }

    public func appendAudit(_ events: [AuditEvent]) throws {
        for e in events { try appendAudit(e) }
    }

    /// Without transactions: the audit rows first, so that a store refusing them never keeps a
    /// token whose issue was not recorded.
    public func commit(_ writes: [StoreWrite], durable: Bool) throws {
        for case .audit(let e) in writes { try appendAudit(e) }
        for case .token(let t) in writes { try insertToken(t) }
    }

    public func revokeTokens(ids: [String], at time: Date, durable: Bool) throws -> [String] {
        try revokeTokens(ids: ids, at: time)
    }

    /// A store whose writes are durable when they return has nothing to do.
    public func syncDurably() throws {}

    /// A store without retention keeps everything.
    public func pruneAudit(olderThan: Date?, maxBytes: Int64?, keepAfter: Date) throws -> AuditPruning {
        let rows = Int64(try audit(identity: nil, since: nil, limit: nil).count)
        return AuditPruning(deleted: 0, rowsLeft: rows, bytesLeft: 0)
    }

    public func auditFootprint() throws -> (rows: Int64, bytes: Int64) {
        (Int64(try audit(identity: nil, since: nil, limit: nil).count), 0)
    }
}

extension TokenRecord {
    /// Neither revoked nor expired at `time` (a token is expired from `expiresAt` on).
    public func isActive(at time: Date) -> Bool {
        revokedAt == nil && time < expiresAt
    }
}
