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
final class DedicatedStreamHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The stream was reset or the session failed; `code` is what the client sent or was sent.
    struct StreamError: Error, CustomStringConvertible {
        let code: USPError.Code
        let detail: String
        var description: String { "\(code.name): \(detail)" }
    }

    /// Owned copies of the session's events, handled after the session call returns (handling
    /// one may call back into the session).
    private enum Note {
        case data(ByteBuffer)
        case finished
        case writable
        case streamClosed(USPError.Code)
        case closed(USPError?)
    }

    private var session: DedicatedStreamSession
    private var context: ChannelHandlerContext?
    private var notes: [Note] = []
    private var dispatching = false
    private var pendingWrites: [(buffer: ByteBuffer, promise: EventLoopPromise<Void>?)] = []
    private var finishAfterWrites = false
    private var lastWrite: EventLoopFuture<Void>?
    private var closing = false

    init(session: DedicatedStreamSession) {
        self.session = session
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// uspd's control line said the session's token was revoked: reset the stream with `code`,
    /// as uspd does for a relayed stream, and end the session.
    func revokedByDaemon(code: USPError.Code) {
        guard let context else { return }
        try? session.reset(code: code) { collect($0) }
        afterSessionCall()
        context.channel.close(promise: nil)
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        guard session.state == .resuming else { return }
        session.resume { collect($0) }
        afterSessionCall()
        // What uspd had already opened was passed on outside a socket read: end the batch here,
        // as NIO does after each read, so the next handler delivers it now.
        context.fireChannelReadComplete()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        buffer.withUnsafeReadableBytes { bytes in session.receive(bytes) { collect($0) } }
        afterSessionCall()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // TCP end of file from the client is the session's end of input, not the stream's FIN.
        if case ChannelEvent.inputClosed = event {
            session.endOfInput { collect($0) }
            afterSessionCall()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        session.endOfInput { collect($0) }
        dispatch()
        failPendingWrites(StreamError(code: .unexpectedEOF, detail: "the connection closed"))
        self.context = nil
        context.fireChannelInactive()
    }

    // MARK: - Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard session.state == .open, session.streamIsOpen, !finishAfterWrites else {
            promise?.fail(StreamError(code: .streamClosed, detail: "the stream is closed for writing"))
            return
        }
        pendingWrites.append((unwrapOutboundIn(data), promise))
        sendPending()
        afterSessionCall()
    }

    func flush(context: ChannelHandlerContext) {
        writeOut()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        switch mode {
        case .output:
            // Half-close: FIN once the queued writes went out.
            finishAfterWrites = true
            sendPending()
            afterSessionCall()
            promise?.succeed(())
        case .input:
            context.close(mode: mode, promise: promise)
        case .all:
            session.close { collect($0) }
            dispatch()
            closeChannel(promise)
        }
    }

    // MARK: - Internals

    private func collect(_ event: DedicatedStreamSession.Event) {
        switch event {
        case .data(let bytes): notes.append(.data(ByteBuffer(bytes: bytes)))
        case .finished: notes.append(.finished)
        case .writable: notes.append(.writable)
        case .streamClosed(let code): notes.append(.streamClosed(code))
        case .closed(let error): notes.append(.closed(error))
        }
    }

    private func afterSessionCall() {
        dispatch()
        writeOut()
    }

    private func dispatch() {
        guard !dispatching else { return }
        dispatching = true
        defer { dispatching = false }
        var index = 0
        while index < notes.count {
            let note = notes[index]
            index += 1
            handle(note)
        }
        notes.removeAll(keepingCapacity: true)
    }

    private func handle(_ note: Note) {
        switch note {
        case .data(let buffer):
            let count = buffer.readableBytes
            context?.fireChannelRead(wrapInboundOut(buffer))
            do throws(USPError) { try session.consumed(count: count) } catch { session.close(code: error.code) { collect($0) } }
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
            session.close { collect($0) }
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
                session.close(code: error.code) { collect($0) }
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
            do throws(USPError) { try session.finish { collect($0) } } catch { session.close(code: error.code) { collect($0) } }
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
