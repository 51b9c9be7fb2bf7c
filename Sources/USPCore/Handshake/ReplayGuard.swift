/// Decides whether the early frames of an IK or NK message 1 may be acted on.
///
/// Message 1 can be recorded and replayed by anyone on the path. The rule (docs/PROTOCOL.md §3.6):
/// early frames are acted on only if the hello's timestamp is within `window` of the server's clock
/// and the client's ephemeral key has not been seen within that window. A replay therefore either
/// carries a stale timestamp or a known ephemeral key, and its early frames are dropped; the
/// handshake itself may go on, but a replayer without the ephemeral private key cannot read
/// message 2 or send a single record, so nothing happens twice. When early data is refused the
/// server's hello says so and an honest client sends those frames again after the handshake.
///
/// Memory is bounded by `capacity`: when the cache is full and nothing has expired, early data is
/// refused (fail closed) rather than forgetting an entry that might be replayed.
public struct ReplayGuard: Sendable {
    public enum Verdict: Equatable, Sendable {
        case accept
        case staleTimestamp
        case futureTimestamp
        case replayed
        case cacheFull
    }

    public let window: Double
    public let capacity: Int
    private var seen: [EphemeralKeyPrefix: Timestamp] = [:]
    private var order: [(EphemeralKeyPrefix, Timestamp)] = []
    private var orderStart = 0

    struct EphemeralKeyPrefix: Hashable, Sendable {
        let a: UInt64, b: UInt64
        init(_ e: [UInt8]) {
            var x: UInt64 = 0, y: UInt64 = 0
            for i in 0..<8 { x = x << 8 | UInt64(e[i]); y = y << 8 | UInt64(e[8 + i]) }
            a = x; b = y
        }
    }

    public init(window seconds: Double = 120, capacity: Int = 1 << 17) {
        window = seconds
        self.capacity = capacity
    }

    public var count: Int { seen.count }

    /// Checks and, on `.accept`, records the ephemeral key. `now` is the server's clock.
    public mutating func check(ephemeral: [UInt8], timestamp: Timestamp, now: Timestamp) -> Verdict {
        precondition(ephemeral.count == 32, "ephemeral keys are 32 bytes")
        expire(now: now)
        let age = now.seconds(since: timestamp)
        if age > window { return .staleTimestamp }
        if age < -window { return .futureTimestamp }
        let key = EphemeralKeyPrefix(ephemeral)
        if seen[key] != nil { return .replayed }
        if seen.count >= capacity { return .cacheFull }
        seen[key] = now
        order.append((key, now))
        return .accept
    }

    private mutating func expire(now: Timestamp) {
        while orderStart < order.count, now.seconds(since: order[orderStart].1) > 2 * window {
            seen[order[orderStart].0] = nil
            orderStart += 1
        }
        if orderStart > 1024, orderStart * 2 > order.count {
            order.removeFirst(orderStart)
            orderStart = 0
        }
    }
}
