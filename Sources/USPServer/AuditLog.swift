import Dispatch
import Foundation
import Logging
import NIOCore
import Synchronization
import USPStore

/// The accountability trail: connections, authentications, tokens and streams, in the store.
///
/// Events are of two kinds:
/// - `note`: what only describes (a connection opened or closed, a login attempt, a token used,
///   a stream closed). It is queued and written with the next grant's commit, or at the latest
///   `flushInterval` later, off the event loop. A crash can lose at most that much of it; nothing
///   was granted on the strength of it.
/// - `record` and `recordToken`: what precedes a grant (a stream about to open, a token about to
///   be handed out). They commit every queued event and their own in one transaction before the
///   caller goes on, and throw if that fails: the caller then refuses what it was about to allow
///   (audit fails closed). The commit does not wait for the disk. Instead the event's session is
///   marked, and its I/O shell asks `durabilityBarrier(session:on:)` after each step: until that
///   future succeeds the session sends nothing and reads nothing, and an application starts only
///   after it. So whatever was granted has its whole trail on disk, in order, and no event loop
///   ever waits for an fsync (`GroupSync` runs it, shared by every session waiting meanwhile).
public final class AuditLog: Sendable {
    public let store: any USPStore
    let logger: Logger
    /// How long a noted event may wait for a durable write; zero writes every event at once.
    public let flushInterval: Duration
    /// Events noted and not yet written, and whether a flush is scheduled.
    private let pending = Mutex<(events: [AuditEvent], scheduled: Bool)>(([], false))
    /// Sessions that committed a grant not yet known to be on disk.
    private let undurable = Mutex<Set<String>>([])
    private let queue = DispatchQueue(label: "uspd.audit-flush")
    private let groupSync: GroupSync
    /// Beyond this many unwritten events (the store keeps failing) the oldest are dropped, logged.
    static let pendingLimit = 100_000

    public init(store: any USPStore, logger: Logger = Logger(label: "uspd.audit"), flushInterval: Duration = .milliseconds(100)) {
        self.store = store
        self.logger = logger
        self.flushInterval = flushInterval
        groupSync = GroupSync(store: store)
    }

    /// Commits every queued event and `event` in one transaction (throws if it could not) and
    /// marks `event.session` as waiting for the disk.
    public func record(_ event: AuditEvent) throws {
        try commit([.audit(event)], for: event, what: event.kind.rawValue, durable: true)
    }

    /// Inserts `token` and commits every queued event and `event` (its `token_issued`) in one
    /// transaction: the token exists only with its trail. `durable: false` for a token that never
    /// leaves the server (begin by name): the stream it opens is recorded right after, and that
    /// record's barrier covers both.
    public func recordToken(_ token: TokenRecord, _ event: AuditEvent, durable: Bool = true) throws {
        try commit([.token(token), .audit(event)], for: event, what: "token \(token.id)", durable: durable)
    }

    private func commit(_ writes: [StoreWrite], for event: AuditEvent, what: String, durable: Bool) throws {
        let queued = takePending()
        // The token row first, then the queued events and the event itself, in time order.
        var batch = writes.filter { if case .token = $0 { return true } else { return false } }
        batch += queued.map(StoreWrite.audit)
        batch += writes.filter { if case .audit = $0 { return true } else { return false } }
        do {
            try store.commit(batch, durable: false)
        } catch {
            requeue(queued)
            logger.error("audit write failed, refusing \(what): \(error)")
            throw error
        }
        if durable, let session = event.session { awaitDisk(session: session) }
    }

    /// `session` granted something on the strength of a write committed without sync (a
    /// revocation it reports done): its next barrier waits for the disk.
    public func awaitDisk(session: String) {
        undurable.withLock { _ = $0.insert(session) }
    }

    /// If `session` committed a grant since the last call, a future that succeeds on `loop` once
    /// that commit is on disk (or fails: the grant must then not leave). nil: nothing to wait for.
    public func durabilityBarrier(session: String, on loop: any EventLoop) -> EventLoopFuture<Void>? {
        guard undurable.withLock({ $0.remove(session) }) != nil else { return nil }
        return groupSync.whenDurable(on: loop)
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
            // Committed, then synced without holding the writer: a grant's commit on an event
            // loop never waits behind this flush's fsync.
            try store.commit(batch.map(StoreWrite.audit), durable: false)
        } catch {
            logger.error("audit write of \(batch.count) event(s) failed, will retry: \(error)")
            requeue(batch)
            return
        }
        do { try store.syncDurably() } catch { logger.error("audit sync failed (the next sync retries it): \(error)") }
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
