import Synchronization

/// Global caps on connections, like OpenSSH's `MaxStartups start:rate:full` and a hard maximum.
///
/// A connection is *starting* from accept until its session is established (menu or application
/// reply sent): handshake and initial request. Up to `startupsBegin` starting connections are all
/// admitted; between `startupsBegin` and `maxStarting` a new one is refused with a probability that
/// rises linearly from `startupsRate` to 100 % (OpenSSH's random early drop, so a flood cannot
/// reliably fill every slot); at `maxStarting` all are refused. `maxConnections` caps everything, and
/// `maxPerSource` the connections open at once from one source address (IPv6 by /64, as
/// `HandshakeRateLimiter` groups them).
public final class ConnectionLimiter: Sendable {
    public enum Verdict: Equatable, Sendable {
        case admit
        case tooManyConnections
        case tooManyStarting
        case tooManyFromSource
    }

    public let maxConnections: Int
    public let maxStarting: Int
    public let startupsBegin: Int
    public let startupsRate: Double
    /// nil: no limit per source.
    public let maxPerSource: Int?

    private struct Counts {
        var total = 0
        var starting = 0
        var bySource: [String: Int] = [:]
    }

    private let counts = Mutex(Counts())
    private let random: @Sendable () -> Double

    /// `startupsBegin` defaults to a tenth of `maxStarting` and `startupsRate` to 30 %
    /// (OpenSSH's 10:30:100 scaled). `random` returns a uniform value in [0, 1).
    public init(maxConnections: Int, maxStarting: Int, startupsBegin: Int? = nil, startupsRate: Double = 0.3, maxPerSource: Int? = nil,
                random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.maxPerSource = maxPerSource
        self.maxConnections = max(1, maxConnections)
        self.maxStarting = max(1, maxStarting)
        self.startupsBegin = min(self.maxStarting, max(1, startupsBegin ?? self.maxStarting / 10))
        self.startupsRate = startupsRate
        self.random = random
    }

    /// A new connection from `source` was accepted: admit it (counted as starting) or refuse it.
    public func connectionAccepted(from source: String = "") -> Verdict {
        let roll = random()
        let key = HandshakeRateLimiter.sourceKey(source)
        return counts.withLock { c in
            if c.total >= maxConnections { return .tooManyConnections }
            if let maxPerSource, c.bySource[key, default: 0] >= maxPerSource { return .tooManyFromSource }
            if c.starting >= maxStarting { return .tooManyStarting }
            if c.starting >= startupsBegin {
                let span = Double(maxStarting - startupsBegin)
                let p = startupsRate + (1 - startupsRate) * Double(c.starting - startupsBegin) / max(1, span)
                if roll < p { return .tooManyStarting }
            }
            c.total += 1
            c.starting += 1
            c.bySource[key, default: 0] += 1
            return .admit
        }
    }

    /// An admitted connection finished starting (its session is established).
    public func connectionEstablished() {
        counts.withLock { $0.starting = max(0, $0.starting - 1) }
    }

    /// An admitted connection from `source` closed; `wasStarting` if it never got established.
    public func connectionClosed(wasStarting: Bool, from source: String = "") {
        let key = HandshakeRateLimiter.sourceKey(source)
        counts.withLock { c in
            c.total = max(0, c.total - 1)
            let n = (c.bySource[key] ?? 1) - 1
            c.bySource[key] = n > 0 ? n : nil
            if wasStarting { c.starting = max(0, c.starting - 1) }
        }
    }

    public var total: Int { counts.withLock { $0.total } }
    public var starting: Int { counts.withLock { $0.starting } }
    /// Connections open now from `source`.
    public func count(from source: String) -> Int { counts.withLock { $0.bySource[HandshakeRateLimiter.sourceKey(source)] ?? 0 } }
}
