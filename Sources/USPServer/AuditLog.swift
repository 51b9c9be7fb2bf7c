import Logging
import USPStore

/// The accountability trail: connections, authentications, tokens and streams, in the store.
///
/// Security events fail closed (docs GUIDE §4.10): `record` throws when the row cannot be written,
/// and the caller then refuses what it was about to allow (a login, a token, a stream).
/// Events that only describe what already happened (a close) use `note`, which logs a failure
/// instead of throwing, since there is nothing left to refuse.
public final class AuditLog: Sendable {
    public let store: any USPStore
    let logger: Logger

    public init(store: any USPStore, logger: Logger = Logger(label: "uspd.audit")) {
        self.store = store
        self.logger = logger
    }

    /// Appends a security event; throws if it could not be written durably.
    public func record(_ event: AuditEvent) throws {
        do {
            try store.appendAudit(event)
        } catch {
            logger.error("audit write failed, refusing \(event.kind.rawValue): \(error)")
            throw error
        }
    }

    /// Appends an event, logging (not throwing) a failure.
    public func note(_ event: AuditEvent) {
        do {
            try store.appendAudit(event)
        } catch {
            logger.error("audit write failed for \(event.kind.rawValue): \(error)")
        }
    }
}
