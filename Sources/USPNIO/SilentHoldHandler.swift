import NIOCore

/// Where a stealth server puts a connection that did not prove it knows the server key: it reads
/// and discards whatever arrives, never writes, ignores the client's FIN, and at `until` (drawn
/// when the connection was accepted) sends its own FIN; it then keeps discarding until the client
/// closes too, or `linger` has passed, so that no input is left unread when the socket is closed
/// (closing with unread input is what makes a kernel answer with RST). docs/PROTOCOL.md §3.3.
///
/// Every such connection therefore looks the same from outside, whatever it sent, however much,
/// however fast, and whether a limit turned it away: no byte, then a FIN at a time that does not
/// depend on the input. `release()` ends the hold early (the hold pool is full; a shutdown); that
/// is the one documented exception.
public final class SilentHoldHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer

    private let until: NIODeadline
    private let linger: TimeAmount
    private let onEnd: () -> Void
    private var context: ChannelHandlerContext?
    private var timer: Scheduled<Void>?
    private var sentFIN = false
    private var ended = false

    /// `onEnd` runs once, on the channel's event loop, when the connection is gone.
    public init(until: NIODeadline, linger: TimeAmount = .seconds(5), onEnd: @escaping () -> Void = {}) {
        self.until = until
        self.linger = linger
        self.onEnd = onEnd
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        // Added by the accept initializer, the channel is not active yet: `channelActive` starts it.
        if context.channel.isActive { start() }
    }

    public func channelActive(context: ChannelHandlerContext) {
        start()
        context.fireChannelActive()
    }

    private func start() {
        guard let context, timer == nil, !sentFIN else { return }
        if until <= .now() {
            sendFIN()
        } else {
            timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: until) { [self] in sendFIN() }
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        self.context = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Discarded: a silent host reads and never answers.
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case ChannelEvent.inputClosed = event else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        // The client's FIN changes nothing before ours (the close time must not depend on input).
        // After ours, both directions are done: close.
        if sentFIN { finish() }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        end()
        context.fireChannelInactive()
    }

    /// Ends the hold now (a full hold pool, a shutdown), still with a FIN and without leaving input unread.
    public func release() {
        guard !sentFIN else { return }
        timer?.cancel()
        sendFIN()
    }

    private func sendFIN() {
        guard let context, !sentFIN else { return }
        sentFIN = true
        timer = nil
        let channel = context.channel
        context.close(mode: .output).assumeIsolated().whenComplete { [self] result in
            if case .failure = result { channel.close(promise: nil); return }
            // Read until the client closes its side too, for at most `linger`.
            timer = channel.eventLoop.assumeIsolated().scheduleTask(in: linger) { [self] in finish() }
        }
    }

    private func finish() {
        timer?.cancel()
        timer = nil
        context?.close(promise: nil)
    }

    private func end() {
        guard !ended else { return }
        ended = true
        onEnd()
    }
}
