import NIOCore
import USPCore

/// The NIO shell of a `ClientSession`: bytes from the socket go into the session, bytes the
/// session produces go to the socket, and the session's actions go to `onAction`, after the
/// session call that produced them returned (so `onAction` may call `withSession`).
///
/// It is deliberately thin (like NIOSSHHandler): the protocol lives in `ClientSession`, the
/// policy (which key to trust, what to request) in the library above. Everything runs on the
/// channel's event loop: `onAction` is called there, and `withSession` must be called there.
///
/// On `channelActive` it sets TCP_NODELAY (records are small and latency-bound) and writes
/// message 1. When the session ends it flushes what the session still has to say (a CLOSE)
/// and closes the channel.
public final class ClientSessionHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private var session: ClientSession
    private let start: ClientStart
    private let delegate: any ClientSessionDelegate
    private let clock: () -> Timestamp
    private let onAction: (ClientAction) -> Void
    private var context: ChannelHandlerContext?
    private var closedReported = false
    /// Action buffers, reused; a call made while another's actions are handed out gets its own.
    private var spareActions: [ClientActions] = []
    /// Ticks while the server has shaping on.
    private var ticker = ShapingTicker()

    /// - Parameters:
    ///   - session: a session in state `idle`.
    ///   - start: what message 1 asks for (authorization token, or an application token and first bytes).
    ///   - delegate: decides whether to trust a server key learned in XX.
    ///   - clock: wall-clock time for hellos and timestamps (the core reads no clock).
    ///   - onAction: receives every action, on the event loop. A data action's bytes are valid
    ///     until it returns (copy what you keep); `.closed` comes exactly once.
    public init(session: ClientSession, start: ClientStart, delegate: any ClientSessionDelegate,
                clock: @escaping () -> Timestamp = ClientSessionHandler.wallClock,
                onAction: @escaping (ClientAction) -> Void) {
        self.session = session
        self.start = start
        self.delegate = delegate
        self.clock = clock
        self.onAction = onAction
    }

    /// The session's state, for callers on the event loop.
    public var state: ClientSession.State { session.state }
    public var menu: ApplicationMenu? { session.menu }
    public var handshake: HandshakeResult? { session.handshake }

    /// CLOCK_REALTIME as a `Timestamp`.
    public static func wallClock() -> Timestamp { ServerClock.now() }

    // MARK: - Channel events

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { begin(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        ticker.stop()
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        begin(context: context)
        context.fireChannelActive()
    }

    private func begin(context: ChannelHandlerContext) {
        guard session.state == .idle else { return }
        // Small records, one round trip each: never let Nagle hold message 1 or a keystroke back.
        _ = context.channel.setOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
        do throws(USPError) {
            try session.start(start, now: clock())
        } catch {
            report(.closed(error))
            context.close(promise: nil)
            return
        }
        flushOutbound(context: context)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let now = clock()
        try? perform(context: context) { actions throws(USPError) in
            buffer.withUnsafeReadableBytes { bytes in
                session.receive(bytes, now: now, delegate: delegate, into: &actions)
            }
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        var actions = ClientActions()
        session.endOfInput(into: &actions)
        handOut(actions)
        if !closedReported { report(.closed(USPError(.unexpectedEOF, "connection closed"))) }
        context.fireChannelInactive()
    }

    /// The first socket error the channel reported (`errorCaught`), for a caller that explains a
    /// failed connection: with TCP Fast Open, a refused connect shows up here, not at connect.
    public private(set) var socketError: (any Error)?

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A socket error (ECONNRESET and the like): the session cannot go on.
        if socketError == nil { socketError = error }
        if !closedReported {
            var ignored = ClientActions()
            session.close(code: .internalError, into: &ignored)
            report(.closed(USPError(.unexpectedEOF, "connection failed: \(SocketErrorText.describe(error))")))
        }
        context.close(promise: nil)
    }

    // MARK: - Calls from the library (on the event loop)

    /// Runs `body` with the session (request, open, write, consume, finish…) and an actions
    /// buffer, then sends what it produced and hands out the actions it appended. Must be called
    /// on the channel's event loop.
    public func withSession<T>(_ body: (inout ClientSession, inout ClientActions) throws(USPError) -> T) throws(USPError) -> T {
        guard let context else { throw USPError(.unexpectedEOF, "connection closed") }
        return try perform(context: context) { (actions) throws(USPError) -> T in try body(&session, &actions) }
    }

    /// Ends the session with CLOSE (`code`), then closes the channel once the CLOSE is written.
    public func close(code: USPError.Code = .ok) {
        guard let context else { return }
        try? perform(context: context) { actions throws(USPError) in session.close(code: code, into: &actions) }
    }

    // MARK: - Plumbing

    /// Calls into the session with a buffer of its own, sends what it produced, hands out its
    /// actions, and closes the channel once the session is over.
    @discardableResult
    private func perform<T>(context: ChannelHandlerContext, _ call: (inout ClientActions) throws(USPError) -> T) throws(USPError) -> T {
        var actions = spareActions.popLast() ?? ClientActions()
        defer {
            actions.removeAll()
            spareActions.append(actions)
        }
        let result: Result<T, USPError>
        do throws(USPError) { result = .success(try call(&actions)) } catch { result = .failure(error) }
        flushOutbound(context: context)
        handOut(actions)
        if session.state == .closed, context.channel.isActive {
            // Whatever the session still had to say (CLOSE) went out in flushOutbound.
            context.close(promise: nil)
        }
        return try result.get()
    }

    /// One shaping tick: one record's worth leaves.
    private func tick() {
        guard let context, !closedReported else { ticker.stop(); return }
        try? perform(context: context) { actions throws(USPError) in try session.tick(into: &actions) }
    }

    private func flushOutbound(context: ChannelHandlerContext) {
        guard session.outboundByteCount > 0 else { return }
        let allocator = context.channel.allocator
        let buffer = session.drainOutbound { bytes in allocator.buffer(bytes: bytes) }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    private func handOut(_ actions: ClientActions) {
        for action in actions { report(action) }
    }

    private func report(_ action: ClientAction) {
        switch action {
        case .closed:
            guard !closedReported else { return }
            closedReported = true
            ticker.stop()
        case .shaping(let profile?):
            guard let loop = context?.eventLoop else { break }
            ticker.start(profile, on: loop) { [weak self] in self?.tick() }
        case .shaping(nil):
            ticker.stop()
        default:
            break
        }
        onAction(action)
    }
}

@available(*, unavailable)
extension ClientSessionHandler: Sendable {}
