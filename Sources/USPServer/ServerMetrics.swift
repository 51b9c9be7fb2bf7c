import CoreMetrics
import Synchronization
import USPStore

/// What uspd counts for monitoring, through swift-metrics with a factory given at start (uspd's
/// is Prometheus', served by `MetricsEndpoint`; the default counts nothing). Counters move as
/// things happen; the gauges of live state (`usp_connections_open`, …) are set when scraped.
/// Every label's values come from a closed set (limit names, error code names, handshake patterns,
/// authentication methods, audit kinds) or from apps.d (application names), never from a client.
/// The names are listed in the README.
public final class ServerMetrics: Sendable {
    private let factory: any MetricsFactory
    private let counters = Mutex<[String: Counter]>([:])
    private let gauges = Mutex<[String: Gauge]>([:])
    private let syncTimer: Timer
    /// Last values of counts kept elsewhere (the audit's summarised and dropped rows), so that
    /// their counters move by the difference.
    private let mirrored = Mutex<[String: Int64]>([:])
    /// False without a factory: nothing reads the counts, so nothing is counted (no key built,
    /// no lock taken per event).
    private let enabled: Bool

    /// Counts into `factory`; without one, counts nothing.
    public init(factory: (any MetricsFactory)? = nil) {
        self.factory = factory ?? NOOPMetricsHandler.instance
        enabled = factory != nil
        syncTimer = Timer(label: "usp_store_sync_seconds", dimensions: [], factory: self.factory)
    }

    func counter(_ label: String, _ dimensions: [(String, String)] = []) -> Counter {
        let key = ([label] + dimensions.map { "\($0.0)=\($0.1)" }).joined(separator: "\u{1}")
        return counters.withLock { all in
            if let c = all[key] { return c }
            let c = Counter(label: label, dimensions: dimensions, factory: factory)
            all[key] = c
            return c
        }
    }

    func gauge(_ label: String, _ value: Int) {
        let g = gauges.withLock { all in
            if let g = all[label] { return g }
            let g = Gauge(label: label, dimensions: [], factory: factory)
            all[label] = g
            return g
        }
        g.record(value)
    }

    /// Moves counter `label` up to `total`, a count kept elsewhere.
    func mirror(_ label: String, total: Int64) {
        let delta = mirrored.withLock { last -> Int64 in
            let d = total - (last[label] ?? 0)
            if d > 0 { last[label] = total }
            return d
        }
        if delta > 0 { counter(label).increment(by: delta) }
    }

    // MARK: - Events

    /// A connection accepted past every limit at accept.
    func accepted() { guard enabled else { return }; counter("usp_connections_accepted_total").increment() }

    /// A connection turned away at accept: `limit` is `handshake_rate`, `max_connections_per_source`,
    /// `max_connections` or `max_unauthenticated`.
    func refused(limit: String) { guard enabled else { return }; counter("usp_connections_refused_total", [("limit", limit)]).increment() }

    /// A connection closed to make room for a newcomer (fair admission).
    func gaveWay() { guard enabled else { return }; counter("usp_connections_gave_way_total").increment() }

    /// A handshake done (`result` ok, with its pattern), or a connection that ended without one
    /// (`result`: the code it ended with, `pattern` none).
    func handshake(result: String, pattern: String) {
        guard enabled else { return }
        counter("usp_handshakes_total", [("result", result), ("pattern", pattern)]).increment()
    }

    /// Runs `sync` (an fdatasync of the store), recording how long it took.
    func timedSync(_ sync: () throws -> Void) throws {
        guard enabled else { return try sync() }
        let start = ContinuousClock.now
        defer {
            let took = (ContinuousClock.now - start).components
            syncTimer.recordNanoseconds(took.seconds * 1_000_000_000 + took.attoseconds / 1_000_000_000)
        }
        try sync()
    }

    /// A store write or sync that failed (`operation`: commit, append, sync).
    func storeError(_ operation: String) { guard enabled else { return }; counter("usp_store_errors_total", [("operation", operation)]).increment() }

    /// Every audited event, before any summarising: its kind, and for some kinds more.
    func audited(_ event: AuditEvent) {
        guard enabled else { return }
        counter("usp_audit_events_total", [("kind", event.kind.rawValue)]).increment(by: event.count ?? 1)
        switch event.kind {
        case .authentication:
            counter("usp_logins_total", [("method", event.method ?? "none"), ("result", event.result ?? "ok")]).increment()
        case .streamOpened:
            counter("usp_streams_opened_total", [("application", event.application ?? "")]).increment()
        case .streamClosed:
            counter("usp_streams_closed_total", [("result", event.result ?? "ok")]).increment()
            if let b = event.bytesIn { counter("usp_stream_bytes_total", [("direction", "in")]).increment(by: b) }
            if let b = event.bytesOut { counter("usp_stream_bytes_total", [("direction", "out")]).increment(by: b) }
        case .connectionClosed:
            if let b = event.bytesIn { counter("usp_connection_bytes_total", [("direction", "in")]).increment(by: b) }
            if let b = event.bytesOut { counter("usp_connection_bytes_total", [("direction", "out")]).increment(by: b) }
        case .tokenRefused:
            counter("usp_tokens_refused_total", [("result", event.result ?? "")]).increment()
        default:
            break
        }
    }
}
