import Synchronization
import USPStore

/// Slows password guessing without letting a stranger lock a user out.
///
/// The core's delegate is synchronous, so it cannot sleep; the slow-down has three parts:
/// 1. **Penalty windows that refuse**, per source address and per (identity, source prefix): each
///    failure opens a window of `base · 2^(failures−1)` seconds (at most `maximum`). An attempt
///    inside a window of its source, or of its identity *from its prefix* (/24, /64), is refused
///    with `rate_limited` without checking the credential, so parallel connections gain nothing.
///    Guessing from one network therefore blocks that network only: the real user elsewhere is
///    not refused.
/// 2. **An identity-wide delay that never refuses**: failures for an identity from anywhere open a
///    window of the same doubling, capped at `identityMaximum` (1 s by default). A password
///    attempt for that identity waits for the window to pass before it is checked (the daemon
///    schedules the check; nothing sleeps), so an attacker with many networks is slowed, and the
///    real user waits at most `identityMaximum`.
/// 3. **A deferred reply.** The connection that failed gets its answer only after the delay of
///    its refusing windows: `ServerSessionHandler` holds the reply and stops reading meanwhile.
///
/// Failures are forgotten `forgetAfter` seconds after the last one, or at a success (which clears
/// its source, its (identity, prefix) and the identity-wide window). Memory is bounded by
/// `maxEntries` (the oldest entries go first).
public final class LoginThrottle: Sendable {
    public let base: Double
    public let maximum: Double
    public let identityMaximum: Double
    public let forgetAfter: Double
    public let maxEntries: Int
    /// The network of a source (`source_prefix_v4`, `source_prefix_v6`).
    public let prefixLengths: SourcePrefix.Lengths

    struct Entry {
        var failures: Int
        var last: Double
        var until: Double
    }

    private let entries = Mutex<[String: Entry]>([:])

    public init(base: Double = 0.25, maximum: Double = 8, identityMaximum: Double = 1, forgetAfter: Double = 900, maxEntries: Int = 100_000,
                prefixLengths: SourcePrefix.Lengths = .init()) {
        self.prefixLengths = prefixLengths
        self.base = base
        self.maximum = max(base, maximum)
        self.identityMaximum = min(max(0, identityMaximum), self.maximum)
        self.forgetAfter = forgetAfter
        self.maxEntries = maxEntries
    }

    /// Seconds until an attempt from `source` for `identity` is allowed (a refusing window is
    /// open); 0 if allowed now.
    public func wait(source: String, identity: String?, now: Double) -> Double {
        entries.withLock { e in
            var wait = 0.0
            for key in refusingKeys(source: source, identity: identity) {
                if let entry = e[key], entry.until > now { wait = max(wait, entry.until - now) }
            }
            return wait
        }
    }

    /// Seconds a password attempt for `identity` should wait before it is checked (the
    /// identity-wide window); at most `identityMaximum`.
    public func identityDelay(identity: String?, now: Double) -> Double {
        guard let identity else { return 0 }
        return entries.withLock { e in
            guard let entry = e[Self.identityKey(identity)], entry.until > now else { return 0 }
            return min(identityMaximum, entry.until - now)
        }
    }

    /// Records a failed attempt; returns the delay of its refusing windows (the reply delay).
    @discardableResult
    public func failed(source: String, identity: String?, now: Double) -> Double {
        entries.withLock { e in
            var delay = 0.0
            for key in refusingKeys(source: source, identity: identity) {
                delay = max(delay, open(&e, key, now: now, cap: maximum))
            }
            if let identity { _ = open(&e, Self.identityKey(identity), now: now, cap: identityMaximum) }
            if e.count > maxEntries {
                e = e.filter { now - $0.value.last <= forgetAfter }
                if e.count > maxEntries {
                    let keep = e.sorted { $0.value.last > $1.value.last }.prefix(maxEntries / 2)
                    e = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
                }
            }
            return delay
        }
    }

    /// A successful login clears its source's record, its identity's from that prefix, and the
    /// identity-wide window.
    public func succeeded(source: String, identity: String?) {
        entries.withLock { e in
            for key in refusingKeys(source: source, identity: identity) { e[key] = nil }
            if let identity { e[Self.identityKey(identity)] = nil }
        }
    }

    private func open(_ e: inout [String: Entry], _ key: String, now: Double, cap: Double) -> Double {
        var entry = e[key] ?? Entry(failures: 0, last: now, until: now)
        if now - entry.last > forgetAfter { entry.failures = 0 }
        entry.failures += 1
        entry.last = now
        let d = min(cap, base * Double(1 << min(entry.failures - 1, 30)))
        entry.until = now + d
        e[key] = entry
        return d
    }

    /// The keys a failure from `source` for `identity` counts under, each with its cap: the
    /// refusing ones (source; identity from the source's prefix), then the identity-wide one. A
    /// fleet keeps the same windows in its store (`SharedLoginPenalties`).
    public func penalties(source: String, identity: String?) -> (refusing: [LoginPenalty], identityWide: LoginPenalty?) {
        (refusingKeys(source: source, identity: identity).map { LoginPenalty(key: $0, cap: maximum) },
         identity.map(identityPenalty))
    }

    /// Every window a failure from `source` for `identity` opens: the refusing ones, then the
    /// identity-wide one (what a fleet records and a success clears).
    public func allPenalties(source: String, identity: String?) -> [LoginPenalty] {
        let p = penalties(source: source, identity: identity)
        return p.refusing + (p.identityWide.map { [$0] } ?? [])
    }

    /// The identity-wide window of `identity`, wherever its attempts come from.
    public func identityPenalty(_ identity: String) -> LoginPenalty {
        LoginPenalty(key: Self.identityKey(identity), cap: identityMaximum)
    }

    func refusingKeys(source: String, identity: String?) -> [String] {
        ["src " + HandshakeRateLimiter.sourceKey(source)] + (identity.map { ["id \($0) from " + SourcePrefix.of(source, lengths: prefixLengths)] } ?? [])
    }

    static func identityKey(_ identity: String) -> String { "id " + identity }
}
