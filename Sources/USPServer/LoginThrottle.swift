import Synchronization

/// Slows password guessing, per source address and per identity, with increasing delays.
///
/// The core's delegate is synchronous, so it cannot sleep; the slow-down has two parts instead:
/// 1. **A penalty window.** Each failure for a source or an identity opens a window of
///    `base · 2^(failures−1)` seconds (at most `maximum`). An attempt for that source or identity
///    inside its window is refused with `rate_limited` without checking the credential, so
///    parallel connections gain nothing: one guess per window, per source and per identity.
/// 2. **A deferred reply.** The connection that failed gets its answer only after the same delay:
///    `ServerSessionHandler` holds the reply and stops reading that client meanwhile.
///
/// Failures are forgotten `forgetAfter` seconds after the last one, or at a success. Memory is
/// bounded by `maxEntries` (the oldest entries go first).
public final class LoginThrottle: Sendable {
    public let base: Double
    public let maximum: Double
    public let forgetAfter: Double
    public let maxEntries: Int

    struct Entry {
        var failures: Int
        var last: Double
        var until: Double
    }

    private let entries = Mutex<[String: Entry]>([:])

    public init(base: Double = 0.25, maximum: Double = 8, forgetAfter: Double = 900, maxEntries: Int = 100_000) {
        self.base = base
        self.maximum = max(base, maximum)
        self.forgetAfter = forgetAfter
        self.maxEntries = maxEntries
    }

    /// Seconds until an attempt from `source` for `identity` is allowed; 0 if allowed now.
    public func wait(source: String, identity: String?, now: Double) -> Double {
        entries.withLock { e in
            var wait = 0.0
            for key in Self.keys(source: source, identity: identity) {
                if let entry = e[key], entry.until > now { wait = max(wait, entry.until - now) }
            }
            return wait
        }
    }

    /// Records a failed attempt; returns the delay imposed (also the reply delay).
    @discardableResult
    public func failed(source: String, identity: String?, now: Double) -> Double {
        entries.withLock { e in
            var delay = 0.0
            for key in Self.keys(source: source, identity: identity) {
                var entry = e[key] ?? Entry(failures: 0, last: now, until: now)
                if now - entry.last > forgetAfter { entry.failures = 0 }
                entry.failures += 1
                entry.last = now
                let d = min(maximum, base * Double(1 << min(entry.failures - 1, 30)))
                entry.until = now + d
                e[key] = entry
                delay = max(delay, d)
            }
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

    /// A successful login clears the identity's record and the source's.
    public func succeeded(source: String, identity: String?) {
        entries.withLock { e in
            for key in Self.keys(source: source, identity: identity) { e[key] = nil }
        }
    }

    static func keys(source: String, identity: String?) -> [String] {
        ["src " + HandshakeRateLimiter.sourceKey(source)] + (identity.map { ["id " + $0] } ?? [])
    }
}
