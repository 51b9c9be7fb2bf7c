import NIOCore
import NIOPosix

/// The engine under both swarms: keeps `slots` connections going to the server, each from the
/// next of `sources`, opens a new one the moment one ends (at most `maxRate` a second, if given),
/// and lets them all go at `stop`. Everything but `start` and `stop` runs on `loop`, which is what
/// makes the `@unchecked Sendable` sound.
final class SlotFiller: @unchecked Sendable {
    let loop: any EventLoop
    private let server: SocketAddress
    private let sources: SourceAddresses
    private let slots: Int
    private let maxRate: Double?
    /// Sets up a connected channel's pipeline; gets the connection's serial number (1, 2, …).
    private let initialize: (Int, any Channel) throws -> Void
    /// Told of each connect that failed (refused, timed out, no local port).
    private let connectFailed: () -> Void

    /// Connections opened so far, and those not yet ended.
    private(set) var attempts = 0
    private(set) var open = 0
    private var tokens = 1.0
    private var lastRefill = 0.0
    private var channels: [ObjectIdentifier: any Channel] = [:]
    private var stopping = false
    private var ticker: RepeatedTask?

    init(loop: any EventLoop, server: SocketAddress, sources: SourceAddresses, slots: Int, maxRate: Double?,
         connectFailed: @escaping () -> Void, initialize: @escaping (Int, any Channel) throws -> Void) {
        self.loop = loop
        self.server = server
        self.sources = sources
        self.slots = slots
        self.maxRate = maxRate
        self.connectFailed = connectFailed
        self.initialize = initialize
    }

    func start() {
        loop.execute {
            self.lastRefill = Monotonic.now()
            self.refill()
            self.ticker = self.loop.scheduleRepeatedTask(initialDelay: .milliseconds(10), delay: .milliseconds(10)) { _ in self.refill() }
        }
    }

    /// Closes every connection (the attacker lets go) and opens no more.
    func stop() async {
        let closing: [EventLoopFuture<Void>]? = try? await loop.submit {
            self.stopping = true
            self.ticker?.cancel()
            return self.channels.values.map { $0.close() }
        }.get()
        for f in closing ?? [] { _ = try? await f.get() }
    }

    // MARK: - On the loop

    private func refill() {
        if let maxRate {
            let now = Monotonic.now()
            tokens = min(tokens + maxRate * (now - lastRefill), max(1, maxRate * 0.02))
            lastRefill = now
        }
        var budget = 256  // per turn, so the loop stays responsive
        while !stopping, open < slots, budget > 0 {
            if maxRate != nil {
                guard tokens >= 1 else { return }
                tokens -= 1
            }
            budget -= 1
            connect()
        }
    }

    private func connect() {
        attempts += 1
        open += 1
        let serial = attempts
        guard let bootstrap = SourceBinding.bootstrap(on: loop, from: sources[serial - 1])?.channelInitializer({ [self] channel in
            channel.eventLoop.makeCompletedFuture { try initialize(serial, channel) }
        }) else {
            ended(failed: true)
            return
        }
        bootstrap.connect(to: server).whenComplete { [self] (result: Result<any Channel, any Error>) in
            guard case .success(let channel) = result else {
                ended(failed: true)
                return
            }
            let id = ObjectIdentifier(channel)
            if stopping { channel.close(promise: nil) }
            channels[id] = channel
            channel.closeFuture.whenComplete { [self] _ in
                channels[id] = nil
                ended(failed: false)
            }
        }
    }

    private func ended(failed: Bool) {
        if failed { connectFailed() }
        open -= 1
        refill()
    }
}
