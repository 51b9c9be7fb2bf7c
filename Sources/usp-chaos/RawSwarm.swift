import NIOCore
import NIOPosix

/// Attackers that speak no USP: TCP connections from chosen source addresses that send nothing,
/// or one random 1024-byte message 1 (what an XX message 1 is: a default uspd answers any such
/// bytes with its 160-byte message 2), and then close on the answer or hold the connection until
/// uspd closes it. Each pool keeps `slots` connections going and opens a new one as soon as one
/// ends, at most `maxRate` a second. Everything runs on one event loop: a pool costs a fraction
/// of a core, not a thread per connection.
final class RawSwarm: @unchecked Sendable {
    struct Pool: Sendable {
        var sources: SourceAddresses
        var slots: Int
        var sendMessage1: Bool
        /// Close once message 2 (160 bytes) has arrived; otherwise hold until uspd closes.
        var closeOnAnswer: Bool
        /// New connections per second at most; nil: as soon as a slot frees up.
        var maxRate: Double?
    }

    /// Counts since start; `open`, `established` and `peakEstablished` are gauges.
    struct Counters: Sendable {
        var attempts = 0
        var connected = 0
        /// Message 2 came back.
        var answered = 0
        /// uspd closed (FIN or RST)…
        var closedByServer = 0
        /// …of those, before the answer was in.
        var closedUnanswered = 0
        var connectFailed = 0
        var open = 0
        var established = 0
        var peakEstablished = 0
    }

    let pools: [Pool]
    private let loop: any EventLoop
    private var fillers: [SlotFiller] = []
    /// Loop-confined.
    private var counters: [Counters]
    private var random = FastRandom()

    init(pools: [Pool], server: SocketAddress, loop: any EventLoop) {
        self.pools = pools
        self.loop = loop
        counters = Array(repeating: Counters(), count: pools.count)
        fillers = pools.indices.map { p in
            SlotFiller(loop: loop, server: server, sources: pools[p].sources, slots: pools[p].slots, maxRate: pools[p].maxRate,
                       connectFailed: { [unowned self] in counters[p].connectFailed += 1 }) { [unowned self] _, channel in
                let message1 = pools[p].sendMessage1 ? random.bytes(1024) : nil
                let attacker = RawAttacker(message1: message1, closeOnAnswer: pools[p].closeOnAnswer) { [unowned self] event in record(event, pool: p) }
                try channel.pipeline.syncOperations.addHandler(attacker)
            }
        }
    }

    func start() {
        for filler in fillers { filler.start() }
    }

    func snapshot() async -> [Counters] {
        (try? await loop.submit {
            self.pools.indices.map { p in
                var c = self.counters[p]
                c.attempts = self.fillers[p].attempts
                c.open = self.fillers[p].open
                return c
            }
        }.get()) ?? counters
    }

    /// Closes every connection (the attacker lets go) and opens no more.
    func stop() async {
        for filler in fillers { await filler.stop() }
    }

    // MARK: - On the loop

    private func record(_ event: RawAttacker.Event, pool p: Int) {
        switch event {
        case .connected:
            counters[p].connected += 1
            counters[p].established += 1
            counters[p].peakEstablished = max(counters[p].peakEstablished, counters[p].established)
        case .answered:
            counters[p].answered += 1
        case .ended(let byServer, let answered):
            counters[p].established -= 1
            if byServer {
                counters[p].closedByServer += 1
                if !answered { counters[p].closedUnanswered += 1 }
            }
        }
    }
}

/// One raw attacker connection: message 1 (or nothing) on connect, then wait.
private final class RawAttacker: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Event {
        case connected
        case answered
        case ended(byServer: Bool, answered: Bool)
    }

    private let message1: [UInt8]?
    private let closeOnAnswer: Bool
    private let report: (Event) -> Void
    private var received = 0
    /// Set when this side closes on the answer (a stop of the swarm is not counted).
    private var closingOurselves = false
    private var active = false

    init(message1: [UInt8]?, closeOnAnswer: Bool, report: @escaping (Event) -> Void) {
        self.message1 = message1
        self.closeOnAnswer = closeOnAnswer
        self.report = report
    }

    func channelActive(context: ChannelHandlerContext) {
        active = true
        report(.connected)
        if let message1 {
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: message1)), promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let before = received
        received += unwrapInboundIn(data).readableBytes
        if before < 160, received >= 160 {
            report(.answered)
            if closeOnAnswer {
                closingOurselves = true
                context.close(promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if active { report(.ended(byServer: !closingOurselves, answered: received >= 160)) }
        active = false
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ECONNRESET and the like: uspd ended it; channelInactive counts it.
        context.close(promise: nil)
    }
}

extension RawSwarm.Counters {
    static func - (a: Self, b: Self) -> Self {
        var d = a
        d.attempts -= b.attempts
        d.connected -= b.connected
        d.answered -= b.answered
        d.closedByServer -= b.closedByServer
        d.closedUnanswered -= b.closedUnanswered
        d.connectFailed -= b.connectFailed
        return d
    }
}
