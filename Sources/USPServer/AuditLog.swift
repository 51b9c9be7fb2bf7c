import Dispatch
import Foundation
import Logging
import NIOCore
import Synchronization
import USPNIO
import USPStore

/// The accountability trail: connections, authentications, tokens and streams, in the store.
///
/// Events are of two kinds:
/// - `note`: what only describes (a connection opened or closed, a login attempt, a token used,
///   a stream closed). It is queued and committed with the next grant's commit, or at the latest
///   `flushInterval` later, off the event loop. A kill -9 can lose at most that much of it. It is
///   on disk with the next grant's sync, or at the latest `lazySyncInterval` after its commit, so a
///   power cut can lose at most that much more; nothing was granted on the strength of it.
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
    /// Rows noted (and begin-by-name tokens) not yet written, and whether a flush is scheduled.
    private let pending = Mutex<(writes: [StoreWrite], scheduled: Bool)>(([], false))
    /// Sessions that committed a grant not yet known to be on disk.
    private let undurable = Mutex<Set<String>>([])
    private let queue = DispatchQueue(label: "uspd.audit-flush")
    private let groupSync: GroupSync
    /// A failing disk fails every grant: its lines are limited.
    let logLimiter = RepeatedLogLimiter()
    /// Whether a sync of flushed notes is scheduled.
    private let lazySyncScheduled = Mutex(false)
    /// How long flushed notes may stay committed but not synced (a grant's sync covers them sooner).
    public let lazySyncInterval: Duration
    /// Beyond this many unwritten events (the store keeps failing) the oldest are dropped, logged.
    static let pendingLimit = 100_000

    public init(store: any USPStore, logger: Logger = Logger(label: "uspd.audit"), flushInterval: Duration = .milliseconds(100),
                lazySyncInterval: Duration = .seconds(1)) {
        self.store = store
        self.logger = logger
        self.flushInterval = flushInterval
        self.lazySyncInterval = lazySyncInterval
        groupSync = GroupSync(store: store)
    }

    /// Commits every queued event and `event` in one transaction (throws if it could not) and
    /// marks `event.session` as waiting for the disk.
    public func record(_ event: AuditEvent) throws {
        try commit([.audit(event)], for: event, what: event.kind.rawValue, durable: true)
    }

    /// Inserts `token` and commits every queued event and `event` (its `token_issued`) in one
    /// transaction: the token exists only with its trail. `durable: false` for a token that never
    /// leaves the server (begin by name): it is queued with its row instead, and the record of the
    /// stream it opens, right after, commits and syncs them together.
    public func recordToken(_ token: TokenRecord, _ event: AuditEvent, durable: Bool = true) throws {
        if !durable, flushInterval > .zero {
            enqueue([.token(token), .audit(event)])
            return
        }
        try commit([.token(token), .audit(event)], for: event, what: "token \(token.id)", durable: durable)
    }

    private func commit(_ writes: [StoreWrite], for event: AuditEvent, what: String, durable: Bool) throws {
        let queued = takePending()
        // The token row first, then the queued rows and the event itself, in time order.
        var batch = writes.filter { if case .token = $0 { return true } else { return false } }
        batch += queued
        batch += writes.filter { if case .audit = $0 { return true } else { return false } }
        do {
            try store.commit(batch, durable: false)
        } catch {
            requeue(queued)
            logLimiter.log(logger, .error, kind: "audit write failed", now: ServerClock.monotonic(), "audit write failed, refusing \(what): \(error)")
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
            do { try store.appendAudit([event]) } catch {
                logLimiter.log(logger, .error, kind: "audit write failed", now: ServerClock.monotonic(),
                               "audit write failed for \(event.kind.rawValue): \(error)")
            }
            return
        }
        enqueue([.audit(event)])
    }

    private func enqueue(_ writes: [StoreWrite]) {
        pending.withLock { p in
            p.writes += writes
            if p.writes.count > Self.pendingLimit { p.writes.removeFirst(p.writes.count - Self.pendingLimit) }
        }
        scheduleFlush()
    }

    /// Writes what is queued now and syncs it (at shutdown).
    public func flush() {
        writePending()
        do { try store.syncDurably() } catch { logger.error("audit sync failed: \(error)") }
    }

    /// Commits what is queued (from the timer); the sync follows within `lazySyncInterval`.
    private func writePending() {
        let batch = pending.withLock { p -> [StoreWrite] in
            p.scheduled = false
            defer { p.writes.removeAll(keepingCapacity: true) }
            return p.writes
        }
        guard !batch.isEmpty else { return }
        do {
            // Committed now, synced later without holding the writer: a grant's commit on an event
            // loop never waits behind a flush's fsync, and a steady trickle of notes costs at most
            // one fsync per `lazySyncInterval`.
            try store.commit(batch, durable: false)
        } catch {
            logLimiter.log(logger, .error, kind: "audit flush failed", now: ServerClock.monotonic(),
                           "audit write of \(batch.count) row(s) failed, will retry: \(error)")
            requeue(batch)
            return
        }
        scheduleLazySync()
    }

    /// Whether flushed notes wait for a lazy sync (for tests).
    var lazySyncIsScheduled: Bool { lazySyncScheduled.withLock { $0 } }

    private func scheduleLazySync() {
        guard lazySyncScheduled.withLock({ scheduled -> Bool in
            if scheduled { return false }
            scheduled = true
            return true
        }) else { return }
        queue.asyncAfter(deadline: .now() + .nanoseconds(Self.nanoseconds(lazySyncInterval))) { [self] in
            lazySyncScheduled.withLock { $0 = false }
            do { try store.syncDurably() } catch { logger.error("audit sync failed (the next sync retries it): \(error)") }
        }
    }

    /// Rows noted and not yet written (for tests and status).
    public var pendingCount: Int { pending.withLock { $0.writes.count } }

    private func takePending() -> [StoreWrite] {
        pending.withLock { p in
            defer { p.writes.removeAll(keepingCapacity: true) }
            return p.writes
        }
    }

    private func requeue(_ writes: [StoreWrite]) {
        guard !writes.isEmpty else { return }
        pending.withLock { p in
            p.writes.insert(contentsOf: writes, at: 0)
            if p.writes.count > Self.pendingLimit {
                logger.error("audit backlog over \(Self.pendingLimit) rows; dropping the oldest \(p.writes.count - Self.pendingLimit)")
                p.writes.removeFirst(p.writes.count - Self.pendingLimit)
            }
        }
        scheduleFlush()
    }

    private func scheduleFlush() {
        guard flushInterval > .zero, pending.withLock({ p -> Bool in
            if p.scheduled || p.writes.isEmpty { return false }
            p.scheduled = true
            return true
        }) else { return }
        queue.asyncAfter(deadline: .now() + .nanoseconds(Self.nanoseconds(flushInterval))) { [self] in writePending() }
    }

    private static func nanoseconds(_ d: Duration) -> Int {
        let (s, a) = d.components
        return Int(s) * 1_000_000_000 + Int(a / 1_000_000_000)
    }
}
