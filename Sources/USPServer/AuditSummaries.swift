import Foundation
import USPStore

/// What strangers can cause in bulk, summarised: refused connections, handshakes that led
/// nowhere, sessions that ended without a login or a stream, failed logins and refused tokens.
///
/// Each such event is written as its own row while a budget allows (`perNetwork` rows per minute
/// per source network, `overall` per minute in all: token buckets); past it, it is counted into
/// a summary of its kind and source network. Every `interval` the summaries are written: one row
/// per kind and network, with `count`, the time span and the results (and, for logins, the user
/// names tried), the `topNetworks` busiest networks of a kind each on a row of their own and the
/// rest of that kind on one row. A flood from any number of addresses therefore adds a bounded
/// number of rows per interval. Not thread-safe: `AuditLog` holds it under its lock.
public struct AuditSummaries: Sendable {
    public struct Budget: Sendable {
        /// Rows of their own per minute per source network, and in all.
        public var perNetwork: Double = 10
        public var overall: Double = 60
        /// Networks of one kind with a summary row of their own per interval; the rest share one.
        public var topNetworks = 16
        /// Seconds between summaries (`audit_summary_interval`).
        public var interval: Double = 60
        public init(perNetwork: Double = 10, overall: Double = 60, topNetworks: Int = 16, interval: Double = 60) {
            self.perNetwork = perNetwork
            self.overall = overall
            self.topNetworks = topNetworks
            self.interval = interval
        }
    }

    private struct Key: Hashable {
        let kind: AuditEvent.Kind
        let network: String
    }

    private struct Tally {
        var count: Int64 = 0
        var first: Date
        var last: Date
        var results: [String: Int64] = [:]
        var identities: [String: Int64] = [:]
        var otherIdentities: Int64 = 0
    }

    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    let budget: Budget
    let prefixLengths: SourcePrefix.Lengths
    private var tallies: [Key: Tally] = [:]
    private var networkBuckets: [String: Bucket] = [:]
    private var overallBucket: Bucket
    private var intervalStart: Double?
    /// Events counted into summaries since start (for status and tests).
    private(set) var summarised: Int64 = 0

    init(budget: Budget = Budget(), prefixLengths: SourcePrefix.Lengths = .init()) {
        self.budget = budget
        self.prefixLengths = prefixLengths
        overallBucket = Bucket(tokens: budget.overall, updated: 0)
    }

    /// Whether `event` (a stranger's) may be written as its own row now, at monotonic `now`;
    /// false: it was counted into its summary.
    mutating func admit(_ event: AuditEvent, now: Double) -> Bool {
        let network = SourcePrefix.of(event.peerAddress ?? "unknown", lengths: prefixLengths)
        if intervalStart == nil { intervalStart = now }
        var mine = networkBuckets[network] ?? Bucket(tokens: budget.perNetwork, updated: now)
        refill(&mine, now: now, perMinute: budget.perNetwork)
        refill(&overallBucket, now: now, perMinute: budget.overall)
        if mine.tokens >= 1, overallBucket.tokens >= 1 {
            mine.tokens -= 1
            overallBucket.tokens -= 1
            networkBuckets[network] = mine
            if networkBuckets.count > 65536 { networkBuckets = networkBuckets.filter { now - $0.value.updated < 60 } }
            return true
        }
        networkBuckets[network] = mine
        count(event, network: network)
        return false
    }

    private func refill(_ b: inout Bucket, now: Double, perMinute: Double) {
        b.tokens = min(perMinute, b.tokens + max(0, now - b.updated) * perMinute / 60)
        b.updated = now
    }

    private mutating func count(_ event: AuditEvent, network: String) {
        let key = Key(kind: event.kind, network: network)
        var t = tallies[key] ?? Tally(first: event.time, last: event.time)
        t.count += 1
        t.first = min(t.first, event.time)
        t.last = max(t.last, event.time)
        t.results[event.result ?? "-", default: 0] += 1
        if let who = event.identity {
            if t.identities[who] != nil || t.identities.count < 16 { t.identities[who, default: 0] += 1 } else { t.otherIdentities += 1 }
        }
        tallies[key] = t
        summarised += 1
    }

    /// The summary rows due at `now` (every `interval`, or all of them with `force`), and resets.
    mutating func due(now: Double, force: Bool = false) -> [AuditEvent] {
        guard !tallies.isEmpty else {
            intervalStart = nil
            return []
        }
        guard force || now - (intervalStart ?? now) >= budget.interval else { return [] }
        intervalStart = nil
        var rows: [AuditEvent] = []
        let byKind = Dictionary(grouping: tallies, by: { $0.key.kind })
        for kind in byKind.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            let ranked = byKind[kind]!.sorted { $0.value.count != $1.value.count ? $0.value.count > $1.value.count : $0.key.network < $1.key.network }
            for (key, tally) in ranked.prefix(budget.topNetworks) {
                rows.append(Self.row(kind: kind, network: key.network, tally))
            }
            let rest = ranked.dropFirst(budget.topNetworks)
            if !rest.isEmpty {
                var merged = rest.first!.value
                for (_, t) in rest.dropFirst() {
                    merged.count += t.count
                    merged.first = min(merged.first, t.first)
                    merged.last = max(merged.last, t.last)
                    merged.results.merge(t.results, uniquingKeysWith: +)
                    for (who, n) in t.identities {
                        if merged.identities[who] != nil || merged.identities.count < 16 { merged.identities[who, default: 0] += n } else { merged.otherIdentities += n }
                    }
                    merged.otherIdentities += t.otherIdentities
                }
                rows.append(Self.row(kind: kind, network: "\(rest.count) other networks", merged))
            }
        }
        tallies = [:]
        return rows.sorted { $0.time < $1.time }
    }

    var pending: Int { tallies.count }

    private static func row(kind: AuditEvent.Kind, network: String, _ t: Tally) -> AuditEvent {
        func list(_ d: [String: Int64]) -> String {
            d.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", ")
        }
        var detail = "summary of \(t.count) event(s); results: \(list(t.results))"
        if !t.identities.isEmpty {
            detail += "; users: \(list(t.identities))" + (t.otherIdentities > 0 ? ", \(t.otherIdentities) more" : "")
        }
        let top = t.results.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }?.key
        return AuditEvent(time: t.first, kind: kind, peerAddress: network, identity: t.identities.count == 1 ? t.identities.first?.key : nil,
                          result: top, durationMS: Int64((t.last.timeIntervalSince(t.first) * 1000).rounded()), detail: detail)
            .counting(t.count)
    }
}

extension AuditEvent {
    func counting(_ n: Int64) -> AuditEvent {
        var e = self
        e.count = n
        return e
    }

    /// Whether a stranger can cause this row in bulk without credentials: a refused connection, a
    /// failed login, a refused token. (Sessions that end with nothing granted are decided by
    /// `AuditLog`, which sees both their ends.)
    var isStrangerNoise: Bool {
        switch kind {
        case .rateLimited: result == "dropped"
        case .authentication: result != "ok"
        case .tokenRefused: true
        default: false
        }
    }
}
