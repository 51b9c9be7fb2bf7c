import Synchronization

/// Who gets a connection slot when slots run out: OpenSSH's `MaxStartups` and `PerSourcePenalties`
/// turned into fair sharing between source networks.
///
/// Every admitted connection is a `Ticket` in one *class*:
/// - **starting**, from accept until its session is established (menu or application reply sent),
///   *unproven* until message 1 turns out to be a fresh IK/NK initiation (the client knows the
///   server key and is not replaying), *proven* after;
/// - **anonymous**: established, not logged in, no open stream;
/// - **busy**: logged in, or holding an open stream (a token was presented).
///
/// Two budgets are shared: `maxStarting` starting connections and `maxConnections` in all. While a
/// budget has room every connection is admitted. When it is full, a newcomer takes the slot of an
/// *evictable* connection (unproven starting ones first, then anonymous ones; never proven or busy
/// ones) of the source network (`prefix`: a /24 or /64 by default) that holds the most of that
/// budget, as long as it holds more than the newcomer's own network; otherwise the oldest evictable
/// connection of the newcomer's own network gives way to it. Only when neither exists is the
/// newcomer refused. So the budgets are shared max-min fairly: a few networks may use every slot
/// while nobody else asks, and must give them up when someone does; and a flood's connections last
/// only as long as it takes the flood itself to replace them, while a client that knows the key
/// leaves the unproven class after one message.
///
/// `maxPerSource` still caps what one source address holds at once (IPv6: its /64), whatever the
/// room. Eviction runs the ticket's `evict` closure (the daemon closes the connection: silently
/// before the handshake is done, with CLOSE `server_busy` after).
public final class AdmissionControl: Sendable {
    public enum Refusal: Error, Equatable, Sendable {
        case tooManyConnections
        case tooManyStarting
        case tooManyFromSource
    }

    public enum Class: Equatable, Sendable {
        case starting(proven: Bool)
        case anonymous
        case busy

        var isStarting: Bool { if case .starting = self { true } else { false } }
        /// Lower is evicted first; nil: never evicted.
        var evictionRank: Int? {
            switch self {
            case .starting(proven: false): 0
            case .anonymous: 1
            case .starting(proven: true), .busy: nil
            }
        }
    }

    /// One admitted connection; hand it back on every change and when the connection closes.
    public struct Ticket: Hashable, Sendable {
        let id: UInt64
        let source: String
        let prefix: String
    }

    public struct Admission: Sendable {
        public let ticket: Ticket
        /// What had to give way to it, if anything (already told to close).
        public let evicted: Eviction?
    }

    public struct Eviction: Equatable, Sendable {
        public let prefix: String
        public let wasStarting: Bool
    }

    public let maxConnections: Int
    public let maxStarting: Int
    /// nil: no limit per source.
    public let maxPerSource: Int?
    public let prefixLengths: SourcePrefix.Lengths

    private struct Entry {
        let source: String
        let prefix: String
        var kind: Class
        let evict: @Sendable () -> Void
    }

    private struct Network {
        var total = 0
        var starting = 0
        /// Admission order, for the oldest; may hold IDs already gone (skipped, pruned).
        var order: [UInt64] = []
    }

    private struct State {
        var nextID: UInt64 = 1
        var entries: [UInt64: Entry] = [:]
        var networks: [String: Network] = [:]
        var bySource: [String: Int] = [:]
        var total = 0
        var starting = 0
        var evictions = 0
        /// Told to give way, not yet closed (kept so that `reinstate` can count them again).
        var evicting: [UInt64: Entry] = [:]
    }

    private let state = Mutex(State())

    public init(maxConnections: Int, maxStarting: Int, maxPerSource: Int? = nil, prefixLengths: SourcePrefix.Lengths = .init()) {
        self.maxConnections = max(1, maxConnections)
        self.maxStarting = max(1, min(maxStarting, self.maxConnections))
        self.maxPerSource = maxPerSource
        self.prefixLengths = prefixLengths
    }

    /// A connection from `source` was accepted: admit it as starting, making room if a budget is
    /// full, or refuse it. `evict` is how to close it should it later have to give way.
    public func admit(from source: String, evict: @escaping @Sendable () -> Void) -> Result<Admission, Refusal> {
        let prefix = SourcePrefix.of(source, lengths: prefixLengths)
        let sourceKey = HandshakeRateLimiter.sourceKey(source)
        var victims: [@Sendable () -> Void] = []
        let result: Result<Admission, Refusal> = state.withLock { s in
            if let maxPerSource, s.bySource[sourceKey, default: 0] >= maxPerSource { return .failure(.tooManyFromSource) }
            var evicted: Eviction?
            if s.total >= maxConnections {
                guard let id = Self.victim(in: s, for: prefix, count: { $0.total }, startingOnly: false) else {
                    return .failure(.tooManyConnections)
                }
                let e = remove(id, from: &s)
                s.evicting[id] = e
                evicted = Eviction(prefix: e.prefix, wasStarting: e.kind.isStarting)
                victims.append(e.evict)
            }
            if s.starting >= maxStarting {
                guard let id = Self.victim(in: s, for: prefix, count: { $0.starting }, startingOnly: true) else {
                    return .failure(.tooManyStarting)
                }
                let e = remove(id, from: &s)
                s.evicting[id] = e
                evicted = Eviction(prefix: e.prefix, wasStarting: true)
                victims.append(e.evict)
            }
            let id = s.nextID
            s.nextID += 1
            s.entries[id] = Entry(source: sourceKey, prefix: prefix, kind: .starting(proven: false), evict: evict)
            s.networks[prefix, default: Network()].total += 1
            s.networks[prefix]!.starting += 1
            s.networks[prefix]!.order.append(id)
            s.bySource[sourceKey, default: 0] += 1
            s.total += 1
            s.starting += 1
            if evicted != nil { s.evictions += 1 }
            return .success(Admission(ticket: Ticket(id: id, source: sourceKey, prefix: prefix), evicted: evicted))
        }
        // Outside the lock: closing may call back into `closed`.
        for evict in victims { evict() }
        return result
    }

    /// The connection changed class (proved the key, established, logged in, opened or ended streams).
    public func update(_ ticket: Ticket, to kind: Class) {
        state.withLock { s in
            guard let old = s.entries[ticket.id]?.kind, old != kind else { return }
            s.entries[ticket.id]!.kind = kind
            if old.isStarting != kind.isStarting {
                let d = kind.isStarting ? 1 : -1
                s.starting += d
                s.networks[ticket.prefix]?.starting += d
            }
        }
    }

    /// A connection chosen to give way turned out not to be evictable by the time it was told
    /// (it logged in or opened a stream on its own thread meanwhile): it is counted again, over
    /// the budget until something closes.
    public func reinstate(_ ticket: Ticket, as kind: Class) {
        state.withLock { s in
            guard s.entries[ticket.id] == nil, var entry = s.evicting.removeValue(forKey: ticket.id) else { return }
            entry.kind = kind
            s.entries[ticket.id] = entry
            s.networks[ticket.prefix, default: Network()].total += 1
            s.networks[ticket.prefix]!.order.append(ticket.id)
            s.bySource[ticket.source, default: 0] += 1
            s.total += 1
            if kind.isStarting {
                s.starting += 1
                s.networks[ticket.prefix]!.starting += 1
            }
        }
    }

    /// The connection closed (or was evicted: then this is a no-op).
    public func closed(_ ticket: Ticket) {
        state.withLock { s in
            s.evicting[ticket.id] = nil
            _ = s.entries[ticket.id].map { _ in remove(ticket.id, from: &s) }
        }
    }

    public var total: Int { state.withLock { $0.total } }
    public var starting: Int { state.withLock { $0.starting } }
    /// Connections that had to give way to a newcomer since start.
    public var evictions: Int { state.withLock { $0.evictions } }
    /// Connections open now from `source` (IPv6: its /64).
    public func count(from source: String) -> Int { state.withLock { $0.bySource[HandshakeRateLimiter.sourceKey(source)] ?? 0 } }
    /// Connections open now from `source`'s network.
    public func countInNetwork(of source: String) -> Int {
        state.withLock { $0.networks[SourcePrefix.of(source, lengths: prefixLengths)]?.total ?? 0 }
    }

    // MARK: - Choosing who gives way

    /// The connection to evict for a newcomer from `prefix`: the oldest evictable one (lowest
    /// rank first) of the network with the largest `count` that has one, if that count exceeds
    /// the newcomer's network's; else the oldest evictable one of the newcomer's own network.
    private static func victim(in s: State, for prefix: String, count: (Network) -> Int, startingOnly: Bool) -> UInt64? {
        let own = s.networks[prefix].map(count) ?? 0
        var heaviest: (victim: UInt64, count: Int)?
        for (p, n) in s.networks where p != prefix {
            let c = count(n)
            guard c > own, c > (heaviest?.count ?? 0) else { continue }
            if let id = oldestEvictable(in: n, s, startingOnly: startingOnly) { heaviest = (id, c) }
        }
        if let heaviest { return heaviest.victim }
        return s.networks[prefix].flatMap { oldestEvictable(in: $0, s, startingOnly: startingOnly) }
    }

    private static func oldestEvictable(in network: Network, _ s: State, startingOnly: Bool) -> UInt64? {
        var best: (id: UInt64, rank: Int)?
        for id in network.order {
            guard let kind = s.entries[id]?.kind, let rank = kind.evictionRank, !startingOnly || kind.isStarting else { continue }
            if rank == 0 { return id }
            if best == nil { best = (id, rank) }
        }
        return best?.id
    }

    private func remove(_ id: UInt64, from s: inout State) -> Entry {
        let e = s.entries.removeValue(forKey: id)!
        s.total -= 1
        if e.kind.isStarting { s.starting -= 1 }
        let left = (s.bySource[e.source] ?? 1) - 1
        s.bySource[e.source] = left > 0 ? left : nil
        if var n = s.networks[e.prefix] {
            n.total -= 1
            if e.kind.isStarting { n.starting -= 1 }
            if n.total == 0 {
                s.networks[e.prefix] = nil
            } else {
                // Drop IDs that are gone once they are half the list, so it stays proportional.
                if n.order.count > 2 * n.total + 8 { n.order.removeAll { s.entries[$0] == nil } }
                s.networks[e.prefix] = n
            }
        }
        return e
    }
}
