import Synchronization

/// Global caps on connections, like OpenSSH's `MaxStartups start:rate:full` and a hard maximum.
///
/// A connection is *starting* from accept until its session is established (menu or application
/// reply sent): handshake and initial request. Up to `startupsBegin` starting connections are all
/// admitted; between `startupsBegin` and `maxStarting` a new one is refused with a probability that
/// rises linearly from `startupsRate` to 100 % (OpenSSH's random early drop, so a flood cannot
/// reliably fill every slot); at `maxStarting` all are refused. `maxConnections` caps everything.
public final class ConnectionLimiter: Sendable {
    public enum Verdict: Equatable, Sendable {
        case admit
        case tooManyConnections
        case tooManyStarting
    }

    public let maxConnections: Int
    public let maxStarting: Int
    public let startupsBegin: Int
    public let startupsRate: Double

    private struct Counts {
        var total = 0
        var starting = 0
    }

    private let counts = Mutex(Counts())
    private let random: @Sendable () -> Double

    /// `startupsBegin` defaults to a tenth of `maxStarting` and `startupsRate` to 30 %
    /// (OpenSSH's 10:30:100 scaled). `random` returns a uniform value in [0, 1).
    public init(maxConnections: Int, maxStarting: Int, startupsBegin: Int? = nil, startupsRate: Double = 0.3,
                random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.maxConnections = max(1, maxConnections)
        self.maxStarting = max(1, maxStarting)
        self.startupsBegin = min(self.maxStarting, max(1, startupsBegin ?? self.maxStarting / 10))
        self.startupsRate = startupsRate
        self.random = random
    }

    /// A new connection was accepted: admit it (counted as starting) or refuse it.
    public func connectionAccepted() -> Verdict {
        let roll = random()
        return counts.withLock { c in
            if c.total >= maxConnections { return .tooManyConnections }
            if c.starting >= maxStarting { return .tooManyStarting }
            if c.starting >= startupsBegin {
                let span = Double(maxStarting - startupsBegin)
                let p = startupsRate + (1 - startupsRate) * Double(c.starting - startupsBegin) / max(1, span)
                if roll < p { return .tooManyStarting }
            }
            c.total += 1
            c.starting += 1
            return .admit
        }
    }

    /// An admitted connection finished starting (its session is established).
    public func connectionEstablished() {
        counts.withLock { $0.starting = max(0, $0.starting - 1) }
    }

    /// An admitted connection closed; `wasStarting` if it never got established.
    public func connectionClosed(wasStarting: Bool) {
        counts.withLock { c in
            c.total = max(0, c.total - 1)
            if wasStarting { c.starting = max(0, c.starting - 1) }
        }
    }

    public var total: Int { counts.withLock { $0.total } }
    public var starting: Int { counts.withLock { $0.starting } }
}
