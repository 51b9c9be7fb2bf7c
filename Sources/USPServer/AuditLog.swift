import Dispatch
import Foundation
import Logging
import Synchronization
import USPStore

/// The accountability trail: connections, authentications, tokens and streams, in the store.
///
/// **Group commit.** Each durable write costs an fsync (SQLite in WAL with `synchronous=FULL`),
/// which was most of a new session's CPU. So events are of two kinds:
/// - `note`: what only describes (a connection opened or closed, a login attempt, a token used,
///   a stream closed). It is queued and written with the next durable write, or at the latest
///   `flushInterval` later, off the event loop. A crash can lose at most that much of it; nothing
///   was granted on the strength of it.
/// - `record` and `recordToken`: what precedes a grant (a stream about to open, a token about to
///   be handed out). They write every queued event and their own in one transaction, before the
///   caller goes on, and throw if that fails — the caller then refuses what it was about to allow
///   (GUIDE §4.10: fail closed). So whatever was granted has its whole trail on disk, in order.
public final class AuditLog: Sendable {
    public let store: any USPStore
    let logger: Logger
    /// How long a noted event may wait for a durable write; zero writes every event at once.
    public let flushInterval: Duration
    /// Events noted and not yet written, and whether a flush is scheduled.
    private let pending = Mutex<(events: [AuditEvent], scheduled: Bool)>(([], false))
    private let queue = DispatchQueue(label: "uspd.audit-flush")
    private let groupCommit: GroupCommit
    /// Beyond this many unwritten events (the store keeps failing) the oldest are dropped, logged.
    static let pendingLimit = 100_000

    public init(store: any USPStore, logger: Logger = Logger(label: "uspd.audit"), flushInterval: Duration = .milliseconds(100)) {
        self.store = store
        self.logger = logger
        self.flushInterval = flushInterval
        groupCommit = GroupCommit(store: store)
    }

    /// Writes every queued event and `event` durably, in one transaction; throws if it could not.
    public func record(_ event: AuditEvent) throws {
        let queued = takePending()
        do {
            try groupCommit.commit(queued.map(StoreWrite.audit) + [.audit(event)])
        } catch {
            requeue(queued)
            logger.error("audit write failed, refusing \(event.kind.rawValue): \(error)")
            throw error
        }
    }

    /// Inserts `token` and writes every queued event and `event` (its `token_issued`) in one
    /// transaction: the token exists only with its trail. `durable: false` for a token that never
    /// leaves the server (begin by name): the stream it opens is recorded durably right after.
    public func recordToken(_ token: TokenRecord, _ event: AuditEvent, durable: Bool = true) throws {
        let queued = takePending()
        let writes = [StoreWrite.token(token)] + queued.map(StoreWrite.audit) + [.audit(event)]
        do {
            if durable { try groupCommit.commit(writes) } else { try store.commit(writes, durable: false) }
        } catch {
            requeue(queued)
            logger.error("audit or token write failed, refusing token \(token.id): \(error)")
            throw error
        }
    }

    /// Queues an event that grants nothing; it is written with the next durable write or within
    /// `flushInterval`. Never throws: a failed flush is logged and retried.
    public func note(_ event: AuditEvent) {
        guard flushInterval > .zero else {
            do { try store.appendAudit([event]) } catch { logger.error("audit write failed for \(event.kind.rawValue): \(error)") }
            return
        }
        pending.withLock { p in
            p.events.append(event)
            if p.events.count > Self.pendingLimit { p.events.removeFirst(p.events.count - Self.pendingLimit) }
        }
        scheduleFlush()
    }

    /// Writes what is queued now (at shutdown, and from the timer).
    public func flush() {
        let batch = pending.withLock { p -> [AuditEvent] in
            p.scheduled = false
            defer { p.events.removeAll(keepingCapacity: true) }
            return p.events
        }
        guard !batch.isEmpty else { return }
        do {
            try store.appendAudit(batch)
        } catch {
            logger.error("audit write of \(batch.count) event(s) failed, will retry: \(error)")
            requeue(batch)
        }
    }

    /// Events noted and not yet written (for tests and status).
    public var pendingCount: Int { pending.withLock { $0.events.count } }

    private func takePending() -> [AuditEvent] {
        pending.withLock { p in
            defer { p.events.removeAll(keepingCapacity: true) }
            return p.events
        }
    }

    private func requeue(_ events: [AuditEvent]) {
        guard !events.isEmpty else { return }
        pending.withLock { p in
            p.events.insert(contentsOf: events, at: 0)
            if p.events.count > Self.pendingLimit {
                logger.error("audit backlog over \(Self.pendingLimit) events; dropping the oldest \(p.events.count - Self.pendingLimit)")
                p.events.removeFirst(p.events.count - Self.pendingLimit)
            }
        }
        scheduleFlush()
    }

    private func scheduleFlush() {
        guard flushInterval > .zero, pending.withLock({ p -> Bool in
            if p.scheduled || p.events.isEmpty { return false }
            p.scheduled = true
            return true
        }) else { return }
        queue.asyncAfter(deadline: .now() + .nanoseconds(Self.nanoseconds(flushInterval))) { [self] in flush() }
    }

    private static func nanoseconds(_ d: Duration) -> Int {
        let (s, a) = d.components
        return Int(s) * 1_000_000_000 + Int(a / 1_000_000_000)
    }
}
