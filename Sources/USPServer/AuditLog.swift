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
///
/// What strangers can cause in bulk is bounded (`AuditSummaries`): refused connections, failed
/// logins, refused tokens, and sessions that end with nothing granted (no login, no stream; their
/// `connection_opened` row is held until the session does something or ends) are written one
/// row each within a budget per source network, and counted into summary rows past it. With a
/// `SpaceReserve`, a full disk releases the reserve so that grants go on, and strangers' rows are
/// then dropped and counted (an `audit_gap` row says how many once there is room again).
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

    /// Strangers' rows: the budget, the summaries, and what was dropped.
    private struct Noise {
        var summaries: AuditSummaries
        /// Sessions whose `connection_opened` row is held (nil value: released, written).
        var opened: [String: AuditEvent?] = [:]
        var summaryScheduled = false
        /// Rows not written: strangers' while the reserve is in use, and backlog overflow.
        var dropped: Int64 = 0
        var droppedReasons: Set<String> = []
        var reserveInUse = false
    }

    private let noise: Mutex<Noise>
    private let reserve: SpaceReserve?
    private let monotonic: @Sendable () -> Double
    /// Counts every event, store error and sync (uspd's monitoring).
    public let metrics: ServerMetrics

    public init(store: any USPStore, logger: Logger = Logger(label: "uspd.audit"), flushInterval: Duration = .milliseconds(100),
                lazySyncInterval: Duration = .seconds(1), summaries: AuditSummaries.Budget = .init(),
                prefixLengths: SourcePrefix.Lengths = .init(), reserve: SpaceReserve? = nil,
                monotonic: @escaping @Sendable () -> Double = { ServerClock.monotonic() }, metrics: ServerMetrics = ServerMetrics()) {
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.flushInterval = flushInterval
        self.lazySyncInterval = lazySyncInterval
        self.reserve = reserve
        self.monotonic = monotonic
        noise = Mutex(Noise(summaries: AuditSummaries(budget: summaries, prefixLengths: prefixLengths)))
        groupSync = GroupSync(store: store, metrics: metrics)
        if let reserve, !reserve.restore() {
            logger.warning("cannot hold \(reserve.bytes) bytes of disk in reserve at \(reserve.path): the file system is nearly full")
        }
    }

    /// Commits every queued event and `event` in one transaction (throws if it could not) and
    /// marks `event.session` as waiting for the disk.
    public func record(_ event: AuditEvent) throws {
        metrics.audited(event)
        releaseOpened(of: event.session)
        try commit([.audit(event)], for: event, what: event.kind.rawValue, durable: true)
    }

    /// Inserts `token` and commits every queued event and `event` (its `token_issued`) in one
    /// transaction: the token exists only with its trail. `durable: false` for a token that never
    /// leaves the server (begin by name): it is queued with its row instead, and the record of the
    /// stream it opens, right after, commits and syncs them together.
    public func recordToken(_ token: TokenRecord, _ event: AuditEvent, durable: Bool = true) throws {
        metrics.audited(event)
        releaseOpened(of: event.session)
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
        var requeueOnFailure = queued
        do {
            do {
                try store.commit(batch, durable: false)
            } catch let e as StoreError where e.code == .full {
                // Grants come first: the reserve makes room; if the backlog still does not fit, it
                // is dropped (and counted) so that this grant's own rows can be written.
                do {
                    guard releaseReserve() else { throw e }
                    try store.commit(batch, durable: false)
                } catch let again as StoreError where again.code == .full && !queued.isEmpty {
                    requeueOnFailure = []
                    countDropped(queued.count, reason: "the disk was full and they did not fit beside a grant's rows")
                    try store.commit(writes, durable: false)
                }
            }
        } catch {
            requeue(requeueOnFailure)
            metrics.storeError("commit")
            logLimiter.log(logger, .error, kind: "audit write failed", now: ServerClock.monotonic(), "audit write failed, refusing \(what): \(error)")
            throw error
        }
        if durable, let session = event.session { awaitDisk(session: session) }
        checkReserve()
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
        metrics.audited(event)
        for e in screen(event) { write(noted: e) }
    }

    private func write(noted event: AuditEvent) {
        guard flushInterval > .zero else {
            do { try store.appendAudit([event]) } catch {
                metrics.storeError("append")
                logLimiter.log(logger, .error, kind: "audit write failed", now: ServerClock.monotonic(),
                               "audit write failed for \(event.kind.rawValue): \(error)")
            }
            return
        }
        enqueue([.audit(event)])
    }

    // MARK: - Strangers' rows

    /// The rows to write for a noted `event` now: none (held, summarised or dropped), itself, or a
    /// held `connection_opened` followed by it.
    private func screen(_ event: AuditEvent) -> [AuditEvent] {
        let now = monotonic()
        var startSummaryTimer = false
        let rows: [AuditEvent] = noise.withLock { n in
            let session = event.session
            if event.kind == .connectionOpened, let session {
                if n.opened.count >= 262_144 {
                    // Far more live sessions than max_connections allows: something is off; stop holding.
                    return [event]
                }
                n.opened[session] = .some(event)
                return []
            }
            var held: AuditEvent??
            if let session { held = n.opened.removeValue(forKey: session) }
            let isNoise: Bool
            if event.kind == .connectionClosed {
                // Nothing was ever written for this session (no handshake, or only its opening): a
                // stranger's connection that led nowhere.
                isNoise = held == nil || held! != nil
            } else {
                isNoise = event.isStrangerNoise
                // The session did something of note: its opening is written first, then this.
                if !isNoise, let session, case .some(.some(let opened)) = held {
                    n.opened[session] = .some(nil)
                    return [opened, event]
                }
                if let session, let held { n.opened[session] = held }
            }
            guard isNoise else { return [event] }
            if n.reserveInUse {
                var heldOpening = false
                if event.kind == .connectionClosed, case .some(.some) = held { heldOpening = true }
                n.dropped += heldOpening ? 2 : 1
                n.droppedReasons.insert("the disk was full and its reserve in use for grants")
                return []
            }
            if n.summaries.admit(event, now: now) {
                if event.kind != .connectionClosed, let session { n.opened[session] = .some(nil) }
                if case .some(.some(let opened)) = held { return [opened, event] }
                return [event]
            }
            if !n.summaryScheduled {
                n.summaryScheduled = true
                startSummaryTimer = true
            }
            return []
        }
        if startSummaryTimer { scheduleSummaries() }
        return rows
    }

    /// `session` is about to write a row of note: its held `connection_opened` goes first.
    private func releaseOpened(of session: String?) {
        guard let session else { return }
        let opened: AuditEvent? = noise.withLock { n in
            guard case .some(.some(let e)) = n.opened[session] else { return nil }
            n.opened[session] = .some(nil)
            return e
        }
        if let opened { write(noted: opened) }
    }

    private func scheduleSummaries() {
        let interval = noise.withLock { $0.summaries.budget.interval }
        queue.asyncAfter(deadline: .now() + .nanoseconds(Int(interval * 1e9))) { [self] in writeSummaries(force: true) }
    }

    /// Queues the summary rows due (all of them with `force`), and an `audit_gap` row for what was dropped.
    func writeSummaries(force: Bool) {
        let now = monotonic()
        let rows: [AuditEvent] = noise.withLock { n in
            n.summaryScheduled = false
            var rows = n.summaries.due(now: now, force: force)
            if n.dropped > 0, !n.reserveInUse {
                rows.append(AuditEvent(kind: .auditGap, result: "dropped",
                                       detail: "\(n.dropped) row(s) not written: \(n.droppedReasons.sorted().joined(separator: "; "))")
                    .counting(n.dropped))
                n.dropped = 0
                n.droppedReasons = []
            }
            return rows
        }
        for row in rows { write(noted: row) }
    }

    /// Events counted into summaries since start, and rows dropped and not yet reported.
    public var strangerCounts: (summarised: Int64, dropped: Int64) {
        noise.withLock { ($0.summaries.summarised, $0.dropped) }
    }

    /// The disk is full: frees the reserve for grants (true if there was one to free).
    private func releaseReserve() -> Bool {
        guard let reserve, reserve.release() else { return false }
        noise.withLock { $0.reserveInUse = true }
        logger.error("the disk is full: released the \(reserve.bytes)-byte reserve at \(reserve.path) so that grants go on; rows strangers cause are dropped (and counted) until there is room again")
        return true
    }

    /// Once the disk has room again, takes the reserve back and reports what was dropped.
    private func checkReserve() {
        guard let reserve, noise.withLock({ $0.reserveInUse }) else { return }
        guard reserve.restore() else { return }
        noise.withLock { $0.reserveInUse = false }
        logger.notice("the disk has room again: \(reserve.bytes) bytes are back in reserve at \(reserve.path)")
        writeSummaries(force: false)
    }

    private func enqueue(_ writes: [StoreWrite]) {
        let dropped = pending.withLock { p -> Int in
            p.writes += writes
            let over = p.writes.count - Self.pendingLimit
            if over > 0 { p.writes.removeFirst(over) }
            return max(0, over)
        }
        if dropped > 0 { countDropped(dropped) }
        scheduleFlush()
    }

    private func countDropped(_ n: Int, reason: String = "the backlog went over \(AuditLog.pendingLimit) rows while the store failed") {
        noise.withLock {
            $0.dropped += Int64(n)
            $0.droppedReasons.insert(reason)
        }
    }

    /// Writes what is queued now and syncs it (at shutdown).
    public func flush() {
        checkReserve()
        writeSummaries(force: true)
        writePending()
        do { try timedSync() } catch {
            metrics.storeError("sync")
            logger.error("audit sync failed: \(error)")
        }
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
        checkReserve()
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
            do { try timedSync() } catch {
                metrics.storeError("sync")
                logger.error("audit sync failed (the next sync retries it): \(error)")
            }
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
        var dropped = 0
        pending.withLock { p in
            p.writes.insert(contentsOf: writes, at: 0)
            if p.writes.count > Self.pendingLimit {
                logger.error("audit backlog over \(Self.pendingLimit) rows; dropping the oldest \(p.writes.count - Self.pendingLimit)")
                dropped = p.writes.count - Self.pendingLimit
                p.writes.removeFirst(dropped)
            }
        }
        if dropped > 0 { countDropped(dropped) }
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

    private func timedSync() throws {
        try metrics.timedSync { try store.syncDurably() }
    }

    private static func nanoseconds(_ d: Duration) -> Int {
        let (s, a) = d.components
        return Int(s) * 1_000_000_000 + Int(a / 1_000_000_000)
    }
}
