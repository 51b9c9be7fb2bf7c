import Synchronization

/// A token bucket per source address for new connections, as WireGuard limits handshake
/// initiations (20 per second per source with a burst of 5). IPv6 sources are grouped by their /64,
/// since one host usually owns a whole /64. `StreamLimiter` uses the same buckets, keyed by caller.
///
/// Memory is bounded: past `maxSources` entries, buckets untouched long enough to be full again
/// (they are indistinguishable from absent ones) are dropped; if an attacker with more addresses
/// than that keeps them all busy, the oldest buckets go (the global caps of `ConnectionLimiter`
/// still bound the load).
///
/// **Known sources.** An address from which a session authenticated (a login, or a valid
/// authorization token) within `knownFor` seconds is *known*: its connections draw on a bucket of
/// their own, `knownRate`/`knownBurst` (by default ten times the stranger rate), keyed by the
/// exact address, not its /64. A client that runs many short connections (ssh ProxyCommand, git, a
/// script in a loop) is then not held to the rate meant for strangers, while a flood from the same
/// network that never authenticates still is. Failed handshakes from a known address cost its
/// known bucket, so a known address gone bad loses its head start quickly.
public final class HandshakeRateLimiter: Sendable {
    public let rate: Double
    public let burst: Double
    public let maxSources: Int
    public let knownRate: Double
    public let knownBurst: Double
    /// Seconds an address stays known after its last authentication; 0: no known sources.
    public let knownFor: Double

    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    private let buckets = Mutex<[String: Bucket]>([:])
    /// Known addresses → until when (monotonic seconds), and their buckets (by address).
    private let known = Mutex<[String: Double]>([:])

    public init(rate: Double = 20, burst: Int = 5, maxSources: Int = 65536,
                knownRate: Double? = nil, knownBurst: Int? = nil, knownFor: Double = 600) {
        precondition(rate > 0 && burst >= 1, "a rate limiter needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = Double(burst)
        self.maxSources = maxSources
        self.knownRate = knownRate ?? rate * 10
        self.knownBurst = Double(knownBurst ?? burst * 10)
        self.knownFor = knownFor
        precondition(self.knownRate > 0 && self.knownBurst >= 1, "known sources need a positive rate and a burst of at least 1")
    }

    /// Takes one token for `address` at time `now` (monotonic seconds); false: refuse the connection.
    public func admit(_ address: String, now: Double) -> Bool {
        if isKnown(address, now: now) {
            return take(key: Self.knownKey(address), now: now, rate: knownRate, burst: knownBurst)
        }
        return admit(key: Self.sourceKey(address), now: now)
    }

    /// A session from `address` authenticated at `now`: the address is known for `knownFor` seconds.
    public func vouch(for address: String, now: Double) {
        guard knownFor > 0 else { return }
        known.withLock { known in
            known[address] = now + knownFor
            if known.count > maxSources {
                known = known.filter { $0.value > now }
                if known.count > maxSources {
                    let keep = known.sorted { $0.value > $1.value }.prefix(maxSources / 2)
                    known = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
                }
            }
        }
    }

    public func isKnown(_ address: String, now: Double) -> Bool {
        known.withLock { known in
            guard let until = known[address] else { return false }
            if until > now { return true }
            known.removeValue(forKey: address)
            return false
        }
    }

    public var knownSources: Int { known.withLock { $0.count } }

    /// Takes one token from the bucket named `key` (not grouped: an identity, or a source key).
    public func admit(key: String, now: Double) -> Bool {
        take(key: key, now: now, rate: rate, burst: burst)
    }

    private func take(key: String, now: Double, rate: Double, burst: Double) -> Bool {
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
        let knownSource = isKnown(address, now: now)
        let key = knownSource ? Self.knownKey(address) : Self.sourceKey(address)
        let (rate, burst) = knownSource ? (knownRate, knownBurst) : (self.rate, self.burst)
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
        let refill = max(burst / rate, knownBurst / knownRate)
        buckets = buckets.filter { now - $0.value.updated < refill }
        if buckets.count > maxSources {
            let keep = buckets.sorted { $0.value.updated > $1.value.updated }.prefix(maxSources / 2)
            buckets = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
    }

    /// A known address's bucket: the exact address, apart from the strangers' keys.
    static func knownKey(_ address: String) -> String { "known " + address }

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
