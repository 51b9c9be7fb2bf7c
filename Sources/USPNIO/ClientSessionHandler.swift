import Glibc
import NIOCore
import USPCore

/// A `ClientEvent` with its bytes copied out, so it can outlive the session callback and cross
/// to the library that consumes it.
public enum ClientHandlerEvent: Sendable {
    case handshakeCompleted(pattern: HandshakeLayout.Pattern, serverStatic: [UInt8], earlyDataAccepted: Bool)
    case menu(ApplicationMenu)
    case serviceReply(ServiceReply)
    case applicationSessionReply(ApplicationSessionReply)
    case serverError(WireError)
    case streamAccepted(stream: UInt32)
    case streamRejected(stream: UInt32, code: USPError.Code, message: String)
    case streamData(stream: UInt32, data: ByteBuffer)
    case streamFinished(stream: UInt32)
    case streamClosed(stream: UInt32, code: USPError.Code)
    case streamWritable(stream: UInt32)
    /// The session is over: nil for a clean CLOSE, else the reason. Reported exactly once.
    case closed(USPError?)
}

/// The NIO shell of a `ClientSession`: bytes from the socket go into the session, bytes the
/// session produces go to the socket, and the session's events go, owned, to `onEvent`.
///
/// It is deliberately thin (like NIOSSHHandler): the protocol lives in `ClientSession`, the
/// policy (which key to trust, what to request) in the library above. Everything runs on the
/// channel's event loop: `onEvent` is called there, and `withSession` must be called there.
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
    private let onEvent: (ClientHandlerEvent) -> Void
    private var context: ChannelHandlerContext?
    private var closedReported = false
    /// Events collected while the session is borrowed; delivered once it is free again, so a
    /// consumer may call back into the session from `onEvent`.
    private var pending: [ClientHandlerEvent] = []
    private var delivering = false

    /// - Parameters:
    ///   - session: a session in state `idle`.
    ///   - start: what message 1 asks for (authorization token, or an application token and first bytes).
    ///   - delegate: decides whether to trust a server key learned in XX.
    ///   - clock: wall-clock time for hellos and timestamps (the core reads no clock).
    ///   - onEvent: receives every event, on the event loop.
    public init(session: ClientSession, start: ClientStart, delegate: any ClientSessionDelegate,
                clock: @escaping () -> Timestamp = ClientSessionHandler.wallClock,
                onEvent: @escaping (ClientHandlerEvent) -> Void) {
        self.session = session
        self.start = start
        self.delegate = delegate
        self.clock = clock
        self.onEvent = onEvent
    }

    /// The session's state, for callers on the event loop.
    public var state: ClientSession.State { session.state }
    public var menu: ApplicationMenu? { session.menu }
    public var handshake: HandshakeResult? { session.handshake }

    /// CLOCK_REALTIME as a `Timestamp`.
    public static func wallClock() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(seconds: UInt64(ts.tv_sec), nanoseconds: UInt32(ts.tv_nsec))
    }

    // MARK: - Channel events

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { begin(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
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
        let allocator = context.channel.allocator
        buffer.withUnsafeReadableBytes { bytes in
            session.receive(bytes, now: now, delegate: delegate) { event in
                pending.append(Self.own(event, allocator: allocator))
            }
        }
        afterSessionCall(context: context)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        session.endOfInput { event in pending.append(Self.own(event, allocator: context.channel.allocator)) }
        deliver()
        if !closedReported { report(.closed(USPError(.unexpectedEOF, "connection closed"))) }
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A socket error (ECONNRESET and the like): the session cannot go on.
        if !closedReported {
            session.close(code: .internalError) { _ in }
            pending.removeAll()
            report(.closed(USPError(.unexpectedEOF, "connection failed: \(error)")))
        }
        context.close(promise: nil)
    }

    // MARK: - Calls from the library (on the event loop)

    /// Runs `body` with the session (request, open, write, consume, finish…), then sends what it
    /// produced and delivers the events it raised. Must be called on the channel's event loop.
    public func withSession<T>(_ body: (inout ClientSession, _ onEvent: (ClientEvent) -> Void) throws(USPError) -> T) throws(USPError) -> T {
        guard let context else { throw USPError(.unexpectedEOF, "connection closed") }
        let allocator = context.channel.allocator
        let result: T
        do {
            result = try body(&session) { event in pending.append(Self.own(event, allocator: allocator)) }
        } catch {
            afterSessionCall(context: context)
            throw error
        }
        afterSessionCall(context: context)
        return result
    }

    /// Ends the session with CLOSE (`code`), then closes the channel once the CLOSE is written.
    public func close(code: USPError.Code = .ok) {
        guard let context else { return }
        session.close(code: code) { event in pending.append(Self.own(event, allocator: context.channel.allocator)) }
        afterSessionCall(context: context)
    }

    // MARK: - Plumbing

    private func afterSessionCall(context: ChannelHandlerContext) {
        flushOutbound(context: context)
        deliver()
        if session.state == .closed, context.channel.isActive {
            // Whatever the session still had to say (CLOSE) went out in flushOutbound.
            context.close(promise: nil)
        }
    }

    private func flushOutbound(context: ChannelHandlerContext) {
        guard session.outboundByteCount > 0 else { return }
        let allocator = context.channel.allocator
        let buffer = session.drainOutbound { bytes in allocator.buffer(bytes: bytes) }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    private func deliver() {
        // Re-entrant calls (a consumer calling withSession from onEvent) append to `pending`;
        // the outermost loop delivers them in order.
        guard !delivering else { return }
        delivering = true
        defer { delivering = false }
        while !pending.isEmpty {
            let event = pending.removeFirst()
            report(event)
        }
    }

    private func report(_ event: ClientHandlerEvent) {
        if case .closed = event {
            guard !closedReported else { return }
            closedReported = true
        }
        onEvent(event)
    }

    private static func own(_ event: ClientEvent, allocator: ByteBufferAllocator) -> ClientHandlerEvent {
        switch event {
        case .handshakeCompleted(let pattern, let key, let early):
            .handshakeCompleted(pattern: pattern, serverStatic: key, earlyDataAccepted: early)
        case .menu(let m): .menu(m)
        case .serviceReply(let r): .serviceReply(r)
        case .applicationSessionReply(let r): .applicationSessionReply(r)
        case .serverError(let e): .serverError(e)
        case .streamAccepted(let s): .streamAccepted(stream: s)
        case .streamRejected(let s, let code, let message): .streamRejected(stream: s, code: code, message: message)
        case .streamData(let s, let data): .streamData(stream: s, data: allocator.buffer(bytes: data))
        case .streamFinished(let s): .streamFinished(stream: s)
        case .streamClosed(let s, let code): .streamClosed(stream: s, code: code)
        case .streamWritable(let s): .streamWritable(stream: s)
        case .closed(let e): .closed(e)
        }
    }
}

@available(*, unavailable)
extension ClientSessionHandler: Sendable {}
