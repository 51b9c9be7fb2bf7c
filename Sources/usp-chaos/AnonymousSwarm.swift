import NIOCore
import NIOPosix
import USPCore
import USPNIO

/// Anonymous USP sessions that try to fill uspd's connection slots: a real handshake (NK with
/// the server's key, or XX as a stranger with a throwaway key), an anonymous `initial_request`,
/// the menu, and then nothing but idling, or a PING every few seconds. A session that ends is
/// replaced at once, within `maxRate` new connections a second (a patient attacker stays under
/// uspd's handshake rate per address, since more is refused anyway).
///
/// Built on USPCore's `ClientSession` in USPNIO's `ClientSessionHandler`, the same pieces
/// USPClient's connections use, without their per-connection tasks and files.
final class AnonymousSwarm: @unchecked Sendable {
    struct Plan: Sendable {
        var sources: SourceAddresses
        var slots: Int
        var serverKey: [UInt8]
        /// Every n-th session uses XX (first contact) instead of NK; 0: never.
        var xxEvery = 2
        /// Every n-th session PINGs every `pingInterval` seconds; 0: none.
        var pingEvery = 2
        var pingInterval = 5.0
        var maxRate: Double
        /// A connection without a menu this long after connect is given up.
        var menuDeadline = 10.0
    }

    struct Counters: Sendable {
        var attempts = 0
        /// Sessions that got their menu.
        var established = 0
        /// Connections that ended before a menu.
        var refused = 0
        /// How established sessions ended: the code (idle_timeout, server_busy…).
        var endings: [String: Int] = [:]
        var pings = 0
        var open = 0
        var sessions = 0
        var peakSessions = 0
    }

    let plan: Plan
    private let loop: any EventLoop
    private var filler: SlotFiller!
    /// Loop-confined.
    private var counters = Counters()

    init(plan: Plan, server: SocketAddress, loop: any EventLoop) {
        self.plan = plan
        self.loop = loop
        filler = SlotFiller(loop: loop, server: server, sources: plan.sources, slots: plan.slots, maxRate: plan.maxRate,
                            connectFailed: { [unowned self] in counters.refused += 1 }) { [unowned self] serial, channel in
            let mode: InitiatorHandshake.Mode = plan.xxEvery > 0 && serial % plan.xxEvery == 0
                ? .firstContact(clientStatic: KeyPair.generate(using: SystemRandomSource()))
                : .anonymous(serverKey: plan.serverKey)
            let pinger = plan.pingEvery > 0 && serial % plan.pingEvery == 0
            let session = AnonymousSession(pingInterval: pinger ? plan.pingInterval : nil) { [unowned self] event in record(event) }
            let handler = ClientSessionHandler(session: try ClientSession(mode: mode), start: ClientStart(),
                                               delegate: TrustAnyServerKey()) { action in session.handle(action) }
            session.attach(handler, channel: channel, menuDeadline: plan.menuDeadline)
            try channel.pipeline.syncOperations.addHandler(handler)
        }
    }

    func start() { filler.start() }

    func snapshot() async -> Counters {
        (try? await loop.submit {
            var c = self.counters
            c.attempts = self.filler.attempts
            c.open = self.filler.open
            return c
        }.get()) ?? counters
    }

    /// Closes every session and opens no more.
    func stop() async { await filler.stop() }

    // MARK: - On the loop

    private func record(_ event: AnonymousSession.Event) {
        switch event {
        case .menu:
            counters.established += 1
            counters.sessions += 1
            counters.peakSessions = max(counters.peakSessions, counters.sessions)
        case .ping:
            counters.pings += 1
        case .ended(let hadMenu, let reason):
            if hadMenu {
                counters.sessions -= 1
                counters.endings[reason, default: 0] += 1
            } else {
                counters.refused += 1
            }
        }
    }
}

/// One anonymous session's life: the menu, PINGs, the end. Everything runs on its channel's event
/// loop (the handler's actions, the timers), which is what makes the `@unchecked Sendable` sound.
private final class AnonymousSession: @unchecked Sendable {
    enum Event {
        case menu
        case ping
        case ended(hadMenu: Bool, reason: String)
    }

    private let pingInterval: Double?
    private let report: (Event) -> Void
    private var handler: ClientSessionHandler?
    private var loop: (any EventLoop)?
    private var timer: Scheduled<Void>?
    private var pinging: RepeatedTask?
    private var hadMenu = false
    private var pings: UInt64 = 0

    init(pingInterval: Double?, report: @escaping (Event) -> Void) {
        self.pingInterval = pingInterval
        self.report = report
    }

    func attach(_ handler: ClientSessionHandler, channel: any Channel, menuDeadline: Double) {
        self.handler = handler
        loop = channel.eventLoop
        timer = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(menuDeadline * 1000))) { [weak self] in
            if self?.hadMenu == false { channel.close(promise: nil) }
        }
        channel.closeFuture.whenComplete { [self] _ in
            timer?.cancel()
            pinging?.cancel()
            self.handler = nil
        }
    }

    func handle(_ action: ClientAction) {
        switch action {
        case .menu:
            guard !hadMenu else { return }
            hadMenu = true
            timer?.cancel()
            report(.menu)
            if let pingInterval, let loop {
                let every = TimeAmount.milliseconds(Int64(pingInterval * 1000))
                pinging = loop.scheduleRepeatedTask(initialDelay: every, delay: every) { [weak self] _ in self?.ping() }
            }
        case .closed(let error):
            report(.ended(hadMenu: hadMenu, reason: error?.code.name ?? "ok"))
        default:
            break
        }
    }

    private func ping() {
        guard let handler else { return }
        pings += 1
        let value = pings
        if (try? handler.withSession { session, _ throws(USPError) in try session.ping(value) }) != nil { report(.ping) }
    }
}
