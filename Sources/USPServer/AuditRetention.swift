import Foundation
import USPConfig
import USPStore

/// How long the audit trail is kept and how large it may grow (`audit_max_age`, `audit_max_size`).
/// Rows younger than `keepYoungerThan` (the login token lifetime) are never pruned, so the trail
/// of every token that may still be presented stays whole; a trail that is over its size with
/// only such rows is reported, not cut.
public struct AuditRetention: Sendable, Equatable {
    /// Seconds; nil: forever.
    public var maxAge: Double?
    /// nil: no limit.
    public var maxBytes: Int64?
    public var keepYoungerThan: Double

    public init(maxAge: Double? = nil, maxBytes: Int64? = nil, keepYoungerThan: Double = 86400) {
        self.maxAge = maxAge
        self.maxBytes = maxBytes
        self.keepYoungerThan = keepYoungerThan
    }

    public init(config: ServerConfig) {
        maxAge = config.auditMaxAge > 0 ? config.auditMaxAge * 86400 : nil
        maxBytes = config.auditMaxSize > 0 ? Int64(config.auditMaxSize * 1_048_576) : nil
        keepYoungerThan = Double(config.authorizationTokenLifetime)
    }

    public var isUnlimited: Bool { maxAge == nil && maxBytes == nil }

    /// Prunes `store` as of `now`.
    public func prune(_ store: any USPStore, now: Date = Date()) throws -> AuditPruning {
        try store.pruneAudit(olderThan: maxAge.map { now.addingTimeInterval(-$0) }, maxBytes: maxBytes,
                             keepAfter: now.addingTimeInterval(-keepYoungerThan))
    }
}
