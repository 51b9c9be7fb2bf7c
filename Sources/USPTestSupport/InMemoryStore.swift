import Dispatch
import Foundation
import USPStore

/// A `USPStore` in memory, for policy and end-to-end tests. `failAudit` makes every audit append
/// throw, to check that security events fail closed.
public class InMemoryStore: USPStore, @unchecked Sendable {
    private let lock = NSLock()
    private var usersByName: [String: UserRecord] = [:]
    private var tokens: [String: TokenRecord] = [:]
    private var rows: [AuditEvent] = []
    private var _failAudit = false

    public init() {}

    public var failAudit: Bool {
        get { lock.withLock { _failAudit } }
        set { lock.withLock { _failAudit = newValue } }
    }

    /// Token reads throw, as from a database that cannot be reached.
    private var _failTokenReads = false
    public var failTokenReads: Bool {
        get { lock.withLock { _failTokenReads } }
        set { lock.withLock { _failTokenReads = newValue } }
    }

    public struct AuditUnavailable: Error {}
    public struct StoreUnreachable: Error {}
    public struct SyncFailed: Error {}

    /// How long `syncDurably` takes (the disk's fsync, made slow), and whether it fails.
    private var _syncDelay: Double = 0
    private var _failSync = false
    private var _syncs = 0
    public var syncDelay: Double {
        get { lock.withLock { _syncDelay } }
        set { lock.withLock { _syncDelay = newValue } }
    }
    public var failSync: Bool {
        get { lock.withLock { _failSync } }
        set { lock.withLock { _failSync = newValue } }
    }
    /// Calls of `syncDurably` so far.
    public var syncs: Int { lock.withLock { _syncs } }
    /// Signalled as each `syncDurably` starts and as it ends (a test waits on it from a thread,
    /// not by polling from a task that a busy machine may not wake in time).
    public let syncStarted = DispatchSemaphore(value: 0)
    public let syncEnded = DispatchSemaphore(value: 0)

    public func syncDurably() throws {
        let (delay, fail) = lock.withLock { () -> (Double, Bool) in
            _syncs += 1
            return (_syncDelay, _failSync)
        }
        syncStarted.signal()
        defer { syncEnded.signal() }
        if delay > 0 { Thread.sleep(forTimeInterval: delay) }
        if fail { throw SyncFailed() }
    }

    public func user(named name: String) throws -> UserRecord? { lock.withLock { usersByName[name] } }
    public func users() throws -> [UserRecord] { lock.withLock { usersByName.values.sorted { $0.name < $1.name } } }
    public func upsertUser(_ user: UserRecord) throws { lock.withLock { usersByName[user.name] = user } }
    public func removeUser(named name: String) throws -> Bool { lock.withLock { usersByName.removeValue(forKey: name) != nil } }

    public func insertToken(_ token: TokenRecord) throws { lock.withLock { tokens[token.id] = token } }
    public func token(id: String) throws -> TokenRecord? {
        try lock.withLock {
            if _failTokenReads { throw StoreUnreachable() }
            return tokens[id]
        }
    }
    public func revokeTokens(ids: [String], at time: Date) throws -> [String] {
        lock.withLock {
            var done: [String] = []
            let wanted = Set(ids)
            for (id, t) in tokens where t.revokedAt == nil && (wanted.contains(id) || t.authorizationTokenID.map(wanted.contains) == true) {
                tokens[id]!.revokedAt = time
                done.append(id)
            }
            return done.sorted()
        }
    }
    public func brokeredTokenCount(identity: String, since: Date) throws -> Int {
        lock.withLock { tokens.values.filter { $0.identity == identity && $0.brokeredFor != nil && $0.issuedAt >= since }.count }
    }
    public func purgeExpiredTokens(before time: Date) throws -> Int {
        lock.withLock {
            let old = tokens.filter { $0.value.expiresAt < time }.map(\.key)
            for id in old { tokens[id] = nil }
            return old.count
        }
    }
    public func tokensRevoked(after time: Date) throws -> (ids: [String], latest: Date?) {
        lock.withLock {
            let hits = tokens.values.filter { ($0.revokedAt ?? .distantPast) > time }.sorted { $0.revokedAt! < $1.revokedAt! }
            return (hits.map(\.id), hits.last?.revokedAt)
        }
    }
    /// Calls of `commit` so far (each one transaction in a real store).
    public var commits: Int { lock.withLock { _commits } }
    private var _commits = 0

    public func commit(_ writes: [StoreWrite], durable: Bool) throws {
        lock.withLock { _commits += 1 }
        for case .audit(let e) in writes { try appendAudit(e) }
        for case .token(let t) in writes { try insertToken(t) }
    }
    public func appendAudit(_ event: AuditEvent) throws {
        try lock.withLock {
            if _failAudit { throw AuditUnavailable() }
            var e = event
            e.id = Int64(rows.count + 1)
            rows.append(e)
        }
    }
    public func audit(identity: String?, since: Date?, limit: Int?) throws -> [AuditEvent] {
        lock.withLock {
            var r = rows.filter { e in (identity == nil || e.identity == identity) && (since == nil || e.time >= since!) }
            if let limit { r = Array(r.suffix(limit)) }
            return r
        }
    }

    public var allAudit: [AuditEvent] { (try? audit(identity: nil, since: nil, limit: nil)) ?? [] }
    public var allTokens: [TokenRecord] { lock.withLock { Array(tokens.values) } }
}
