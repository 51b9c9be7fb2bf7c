import NIOCore
import USPCore

/// Runs a `DedicatedStreamSession` on the client's TCP connection after a relay-free hand-off, so
/// that the channels behind it see what a relayed session looks like: plaintext `ByteBuffer`s in
/// and out, the client's FIN as `ChannelEvent.inputClosed`, `close(mode: .output)` as this side's
/// FIN. Records, credit, REKEY, PING and CLOSE stay in here.
///
/// - inbound: ciphertext from the socket → the session → plaintext to the next handler (the
///   `NIOAsyncChannel`). Credit goes back to the client as bytes are passed on; the async channel's
///   back-pressure stops reading the socket (`read()`), which holds the client back.
/// - outbound: plaintext writes wait here for the client's credit; a write's promise completes
///   once the session took all of it. `NIOAsyncChannel`'s writer paces itself by the channel's
///   writability, which counts only the sealed bytes below this handler, so an application that
///   writes much faster than the client reads buffers the excess here (awaiting each write's
///   promise, as `channel.writeAndFlush(_:).get()` does, bounds it).
/// - the stream closing (both FINs, or a reset) ends the session with CLOSE and closes the channel;
///   a reset or a session error reaches the next handler as `DedicatedStreamHandler.StreamError`.
public final class DedicatedStreamHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// The stream was reset or the session failed; `code` is what the client sent or was sent.
    public struct StreamError: Error, CustomStringConvertible {
        public let code: USPError.Code
        public let detail: String
        public var description: String { "\(code.name): \(detail)" }
    }

    private var session: DedicatedStreamSession
    private var context: ChannelHandlerContext?
    /// Action buffers, reused; a call made while another's actions are carried out gets its own.
    private var spareActions: [DedicatedStreamSession.Actions] = []
    private var pendingWrites: [(buffer: ByteBuffer, promise: EventLoopPromise<Void>?)] = []
    private var finishAfterWrites = false
    private var lastWrite: EventLoopFuture<Void>?
    private var closing = false

    public init(session: DedicatedStreamSession) {
        self.session = session
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// uspd's control line said the session's token was revoked: reset the stream with `code`,
    /// as uspd does for a relayed stream, and end the session.
    public func revokedByDaemon(code: USPError.Code) {
        guard let context else { return }
        performThrowing { (actions) throws(USPError) in try session.reset(code: code, into: &actions) }
        writeOut()
        context.channel.close(promise: nil)
    }

    public func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        guard session.state == .resuming else { return }
        perform { session.resume(into: &$0) }
        writeOut()
        // What uspd had already opened was passed on outside a socket read: end the batch here,
        // as NIO does after each read, so the next handler delivers it now.
        context.fireChannelReadComplete()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        perform { actions in buffer.withUnsafeReadableBytes { bytes in session.receive(bytes, into: &actions) } }
        writeOut()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // TCP end of file from the client is the session's end of input, not the stream's FIN.
        if case ChannelEvent.inputClosed = event {
            perform { session.endOfInput(into: &$0) }
            writeOut()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        perform { session.endOfInput(into: &$0) }
        failPendingWrites(StreamError(code: .unexpectedEOF, detail: "the connection closed"))
        self.context = nil
        context.fireChannelInactive()
    }

    // MARK: - Outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard session.state == .open, session.streamIsOpen, !finishAfterWrites else {
            promise?.fail(StreamError(code: .streamClosed, detail: "the stream is closed for writing"))
            return
        }
        pendingWrites.append((unwrapOutboundIn(data), promise))
        sendPending()
        writeOut()
    }

    public func flush(context: ChannelHandlerContext) {
        writeOut()
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        switch mode {
        case .output:
            // Half-close: FIN once the queued writes went out.
            finishAfterWrites = true
            sendPending()
            writeOut()
            promise?.succeed(())
        case .input:
            context.close(mode: mode, promise: promise)
        case .all:
            perform { session.close(into: &$0) }
            closeChannel(promise)
        }
    }

    // MARK: - Internals

    /// Calls into the session with an actions buffer of its own, then carries the actions out.
    private func perform(_ call: (inout DedicatedStreamSession.Actions) -> Void) {
        var actions = spareActions.popLast() ?? DedicatedStreamSession.Actions()
        call(&actions)
        for action in actions { carryOut(action) }
        actions.removeAll()
        spareActions.append(actions)
    }

    /// The same for a call that throws on a local failure: the session is then closed with its code.
    private func performThrowing(_ call: (inout DedicatedStreamSession.Actions) throws(USPError) -> Void) {
        perform { actions in
            do throws(USPError) { try call(&actions) } catch { session.close(code: error.code, into: &actions) }
        }
    }

    private func carryOut(_ action: DedicatedStreamSession.Action) {
        switch action {
        case .data(let bytes):
            let buffer = bytes.withUnsafeBytes { ByteBuffer(bytes: $0) }
            context?.fireChannelRead(wrapInboundOut(buffer))
            // The bytes are passed on: their credit goes back to the client (one call).
            performThrowing { (_) throws(USPError) in try session.consumed(count: bytes.count) }
        case .finished:
            context?.fireChannelReadComplete()
            context?.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        case .writable:
            sendPending()
        case .streamClosed(let code):
            if code != .ok {
                failPendingWrites(StreamError(code: code, detail: "the stream was reset"))
                context?.fireErrorCaught(StreamError(code: code, detail: "the stream was reset"))
            }
            // The stream was the connection's only purpose.
            perform { session.close(into: &$0) }
        case .closed(let error):
            if let error {
                failPendingWrites(StreamError(code: error.code, detail: error.detail))
                context?.fireErrorCaught(StreamError(code: error.code, detail: error.detail))
            }
            closeChannel(nil)
        }
    }

    /// Hands queued writes to the session as far as credit goes; sends FIN after the last one if asked.
    private func sendPending() {
        while !pendingWrites.isEmpty {
            var buffer = pendingWrites[0].buffer
            let taken: Int
            do throws(USPError) {
                taken = try buffer.withUnsafeReadableBytes { bytes throws(USPError) in try session.write(bytes) }
            } catch {
                perform { session.close(code: error.code, into: &$0) }
                return
            }
            buffer.moveReaderIndex(forwardBy: taken)
            if buffer.readableBytes > 0 {
                pendingWrites[0].buffer = buffer
                return  // waits for `.writable`
            }
            pendingWrites.removeFirst().promise?.succeed(())
        }
        if finishAfterWrites, session.state == .open, session.streamIsOpen {
            performThrowing { (actions) throws(USPError) in try session.finish(into: &actions) }
            finishAfterWrites = false
        }
    }

    private func failPendingWrites(_ error: StreamError) {
        let failed = pendingWrites
        pendingWrites = []
        for write in failed { write.promise?.fail(error) }
    }

    private func writeOut() {
        guard let context, session.outboundByteCount > 0 else { return }
        var buffer = context.channel.allocator.buffer(capacity: session.outboundByteCount)
        _ = session.drainOutbound { buffer.writeBytes($0) }
        lastWrite = context.writeAndFlush(wrapOutboundOut(buffer))
    }

    /// Closes the connection (toward the socket) once what is pending, a CLOSE frame, is written.
    private func closeChannel(_ promise: EventLoopPromise<Void>?) {
        writeOut()
        guard let context else { promise?.succeed(()); return }
        let first = !closing
        closing = true
        guard first, let lastWrite else { context.close(promise: promise); return }
        lastWrite.assumeIsolated().whenComplete { _ in context.close(promise: promise) }
    }
}
