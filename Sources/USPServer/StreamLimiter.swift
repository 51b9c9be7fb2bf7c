import Synchronization
import USPCore

/// Per-caller stream limits from uspd.toml: streams opened per minute (`max_streams_per_minute`,
/// a token bucket of that size refilled evenly over the minute) and concurrent streams
/// (`max_streams_per_identity`). A caller is its identity; an anonymous caller is its source
/// address (an IPv6 address by its /64), so strangers share nothing with each other.
///
/// A refusal is an `USPError` whose code the client gets in the RESET of its stream
/// (`rate_limited`, `too_many_streams`) and whose detail names the limit, for the log and the
/// audit trail. Each admitted stream is `release`d once when it ends.
public final class StreamLimiter: Sendable {
    public let perMinute: Int?
    public let concurrent: Int?
    private let bucket: HandshakeRateLimiter?
    private let open = Mutex<[String: Int]>([:])

    /// nil: no such limit.
    public init(perMinute: Int?, concurrent: Int?) {
        self.perMinute = perMinute
        self.concurrent = concurrent
        bucket = perMinute.map { HandshakeRateLimiter(rate: Double($0) / 60, burst: $0) }
    }

    /// "alice", or "anonymous from 192.0.2.7" (IPv6: the /64).
    public static func caller(identity: String?, peerAddress: String) -> String {
        identity ?? "anonymous from \(HandshakeRateLimiter.sourceKey(peerAddress))"
    }

    /// Admits one more stream of `caller` at `now` (monotonic seconds), or says which limit refuses it.
    public func admit(_ caller: String, now: Double) -> USPError? {
        let limit = concurrent
        let counted = open.withLock { o -> Bool in
            if let limit, o[caller, default: 0] >= limit { return false }
            o[caller, default: 0] += 1
            return true
        }
        guard counted else {
            return USPError(.tooManyStreams, "max_streams_per_identity (\(limit!)) reached by \(caller)")
        }
        if let bucket, !bucket.admit(key: caller, now: now) {
            release(caller)
            return USPError(.rateLimited, "max_streams_per_minute (\(perMinute!)) reached by \(caller)")
        }
        return nil
    }

    /// An admitted stream of `caller` ended.
    public func release(_ caller: String) {
        open.withLock { o in
            let n = (o[caller] ?? 1) - 1
            o[caller] = n > 0 ? n : nil
        }
    }

    /// Concurrent streams of `caller` now.
    public func openCount(_ caller: String) -> Int { open.withLock { $0[caller] ?? 0 } }
}
