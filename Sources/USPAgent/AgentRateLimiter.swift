#if canImport(Glibc)
import Glibc
#endif

/// A token bucket per program, keyed by the peer's uid and executable: `rate` opens refill per
/// period, up to `burst` at once. Time is an argument, not a clock read here, so tests drive it.
public struct AgentRateLimiter: Sendable {
    /// `N/s`, `N/min` or `N/h` (`--rate`).
    public struct Rate: Hashable, Sendable, CustomStringConvertible {
        public var count: Int
        public var period: Double
        public var unit: String

        public init(count: Int, perSeconds period: Double, unit: String) {
            self.count = count
            self.period = period
            self.unit = unit
        }

        public static let `default` = Rate(count: 60, perSeconds: 60, unit: "min")

        public init(parsing text: String) throws(AgentError) {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            let periods: [String: Double] = ["s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hour": 3600]
            guard parts.count == 2, let n = Int(parts[0]), n > 0, n <= 1_000_000, let p = periods[String(parts[1])] else {
                throw AgentError(.invalidArgument, "--rate \(text): expected N/s, N/min or N/h with N from 1 to 1000000")
            }
            self.init(count: n, perSeconds: p, unit: String(parts[1]))
        }

        public var description: String { "\(count)/\(unit)" }
        var perSecond: Double { Double(count) / period }
    }

    public struct Key: Hashable, Sendable {
        public var uid: uid_t
        public var executable: String
        public init(uid: uid_t, executable: String) {
            self.uid = uid
            self.executable = executable
        }
    }

    public let rate: Rate
    public let burst: Int
    private var buckets: [Key: (tokens: Double, at: Double)] = [:]
    /// Beyond this many programs, full buckets are forgotten (they are the same as new ones).
    static let maximumKeys = 4096

    public init(rate: Rate = .default, burst: Int = 10) {
        precondition(burst >= 1, "a burst below 1 would refuse everything")
        self.rate = rate
        self.burst = burst
    }

    /// Takes one open from `key`'s bucket at time `now` (seconds); false if it is empty.
    public mutating func allow(_ key: Key, now: Double) -> Bool {
        var bucket = buckets[key] ?? (Double(burst), now)
        bucket.tokens = min(Double(burst), bucket.tokens + max(0, now - bucket.at) * rate.perSecond)
        bucket.at = now
        let allowed = bucket.tokens >= 1
        if allowed { bucket.tokens -= 1 }
        buckets[key] = bucket
        if buckets.count > Self.maximumKeys { forgetFull(now: now) }
        return allowed
    }

    private mutating func forgetFull(now: Double) {
        buckets = buckets.filter { $0.value.tokens + (now - $0.value.at) * rate.perSecond < Double(burst) }
    }
}
