import Synchronization

/// A token bucket per source address for new connections, as WireGuard limits handshake
/// initiations (20 per second per source with a burst of 5). IPv6 sources are grouped by their /64,
/// since one host usually owns a whole /64. `StreamLimiter` uses the same buckets, keyed by caller.
///
/// Memory is bounded: past `maxSources` entries, buckets untouched long enough to be full again
/// (they are indistinguishable from absent ones) are dropped; if an attacker with more addresses
/// than that keeps them all busy, the oldest buckets go (the global caps of `ConnectionLimiter`
/// still bound the load).
public final class HandshakeRateLimiter: Sendable {
    public let rate: Double
    public let burst: Double
    public let maxSources: Int

    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    private let buckets = Mutex<[String: Bucket]>([:])

    public init(rate: Double = 20, burst: Int = 5, maxSources: Int = 65536) {
        precondition(rate > 0 && burst >= 1, "a rate limiter needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = Double(burst)
        self.maxSources = maxSources
    }

    /// Takes one token for `address` at time `now` (monotonic seconds); false: refuse the connection.
    public func admit(_ address: String, now: Double) -> Bool {
        admit(key: Self.sourceKey(address), now: now)
    }

    /// Takes one token from the bucket named `key` (not grouped: an identity, or a source key).
    public func admit(key: String, now: Double) -> Bool {
        buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
            bucket.tokens = min(burst, bucket.tokens + max(0, now - bucket.updated) * rate)
            bucket.updated = now
            let admitted = bucket.tokens >= 1
            if admitted { bucket.tokens -= 1 }
            buckets[key] = bucket
            if buckets.count > maxSources { prune(&buckets, now: now) }
            return admitted
        }
    }

    /// A connection from `address` failed its handshake (timed out, refused, malformed): it costs
    /// `tokens` more, as OpenSSH's PerSourcePenalties do. The bucket may go down to `-burst`, so a
    /// source that keeps failing is held to a fraction of the rate while one that succeeds is not.
    public func penalize(_ address: String, tokens: Double = 1, now: Double) {
        let key = Self.sourceKey(address)
        buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
            bucket.tokens = min(burst, bucket.tokens + max(0, now - bucket.updated) * rate)
            bucket.updated = now
            bucket.tokens = max(-burst, bucket.tokens - tokens)
            buckets[key] = bucket
        }
    }

    public var trackedSources: Int { buckets.withLock { $0.count } }

    private func prune(_ buckets: inout [String: Bucket], now: Double) {
        let refill = burst / rate
        buckets = buckets.filter { now - $0.value.updated < refill }
        if buckets.count > maxSources {
            let keep = buckets.sorted { $0.value.updated > $1.value.updated }.prefix(maxSources / 2)
            buckets = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
    }

    /// The bucket key: the IPv4 address, or the first four groups (/64) of an IPv6 address.
    static func sourceKey(_ address: String) -> String {
        guard address.contains(":") else { return address }
        let groups = expandIPv6(address)
        return groups.prefix(4).joined(separator: ":") + "::/64"
    }

    private static func expandIPv6(_ address: String) -> [String] {
        let bare = address.split(separator: "%").first.map(String.init) ?? address
        let halves = bare.components(separatedBy: "::")
        let head = halves[0].isEmpty ? [] : halves[0].split(separator: ":").map(String.init)
        let tail = halves.count > 1 && !halves[1].isEmpty ? halves[1].split(separator: ":").map(String.init) : []
        let missing = max(0, 8 - head.count - tail.count)
        return (head + Array(repeating: "0", count: halves.count > 1 ? missing : 0) + tail).map { $0.lowercased() }
    }
}

import Foundation
