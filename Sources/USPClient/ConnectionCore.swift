import NIOCore
import USPCore
import USPNIO

/// The event-loop side of a connection: it owns the `ClientSessionHandler`, routes the session's
/// events to whoever waits for them (the first menu, service replies, stream readers and
/// writers), and turns failures into `USPClientError`s.
///
/// Everything here runs on `eventLoop`; the async API (`USPConnection`, `USPStream`) reaches it
/// only through `eventLoop.submit`/`execute` and futures. That confinement is what makes the
/// `@unchecked Sendable` sound.
final class ConnectionCore: @unchecked Sendable {
    let eventLoop: any EventLoop
    let server: ServerURI
    /// Set in the channel initializer, on the event loop.
    var handler: ClientSessionHandler?
    var channel: (any Channel)?

    // Handshake and session facts.
    private(set) var pattern: HandshakeLayout.Pattern?
    private(set) var serverStatic: [UInt8] = []
    private(set) var earlyDataAccepted = false
    private(set) var menu: ApplicationMenu?
    /// The application_session_reply of a dedicated connection.
    private(set) var applicationReply: ApplicationSessionReply?
    /// Why the session ended; nil while it runs.
    private(set) var ended: USPClientError?
    /// The server's `error` message, which comes just before its CLOSE.
    private var serverError: WireError?
    private var closeReason: USPError?
    /// Set when the library itself ended the session (a deadline), to report that instead.
    private var endOverride: USPClientError?

    /// Completed by the first menu (menu connection) or application_session_reply (dedicated).
    let ready: EventLoopPromise<Void>
    private var replyWaiters = CircularBuffer<ReplyWaiter>()
    /// A login reply held until the menu that follows it arrives.
    private var heldLogin: (waiter: ReplyWaiter, reply: ServiceReply)?
    private var streams: [UInt32: StreamCore] = [:]
    /// The dedicated connection's stream, which owns the connection.
    var dedicatedStream: StreamCore?

    struct ReplyWaiter {
        let promise: EventLoopPromise<ServiceReplyAndMenu>
        let expectsMenu: Bool
    }

    init(eventLoop: any EventLoop, server: ServerURI) {
        self.eventLoop = eventLoop
        self.server = server
        ready = eventLoop.makePromise(of: Void.self)
    }

    // MARK: - Actions from the handler

    func handle(_ action: ClientAction) {
        eventLoop.assertInEventLoop()
        switch action {
        case .handshakeCompleted(let pattern, let key, let early):
            self.pattern = pattern
            serverStatic = key
            earlyDataAccepted = early
        case .menu(let m):
            menu = m
            if let held = heldLogin {
                heldLogin = nil
                held.waiter.promise.succeed(ServiceReplyAndMenu(reply: held.reply, menu: m))
            }
            ready.succeed(())
        case .serviceReply(let reply):
            guard let waiter = replyWaiters.popFirst() else {
                // A reply nobody asked for: the server broke the protocol.
                handler?.close(code: .unexpectedMessage)
                return
            }
            if waiter.expectsMenu, case .token? = reply.results[.authentication] {
                heldLogin = (waiter, reply)
            } else {
                waiter.promise.succeed(ServiceReplyAndMenu(reply: reply, menu: nil))
            }
        case .applicationSessionReply(let reply):
            if applicationReply == nil { applicationReply = reply }
            ready.succeed(())
        case .serverError(let e):
            serverError = e
        case .streamAccepted(let id):
            streams[id]?.accepted()
        case .streamRejected(let id, let code, let message):
            let error = ErrorText.streamRefused(code: code, message: message, server: server)
            streams[id]?.terminate(error)
            streams[id] = nil
        case .streamData(let id, let data):
            streams[id]?.receive(data.withUnsafeBytes { ByteBuffer(bytes: $0) })
        case .streamFinished(let id):
            streams[id]?.peerFinished()
        case .streamClosed(let id, let code):
            guard let s = streams.removeValue(forKey: id) else { return }
            if code == .ok {
                s.closedCleanly()
            } else {
                s.terminate(ErrorText.streamReset(code: code, server: server))
            }
            if s === dedicatedStream { closeSession() }
        case .shaping:
            // The handler ticks; nothing to do here.
            break
        case .streamWritable(let id):
            if let s = streams[id] { drainWrites(s) }
        case .closed(let reason):
            closeReason = reason
            let error = endOverride ?? ErrorText.sessionEnded(reason: reason, serverError: serverError, server: server,
                                                              handshakeDone: pattern != nil)
            end(error, clean: reason == nil)
        }
    }

    /// The TCP connection never came up: fail everything that waits.
    func abandon(_ error: USPClientError) {
        eventLoop.assertInEventLoop()
        end(error, clean: false)
    }

    private func end(_ error: USPClientError, clean: Bool) {
        guard ended == nil else { return }
        ended = error
        ready.fail(error)
        while let w = replyWaiters.popFirst() { w.promise.fail(error) }
        if let held = heldLogin { heldLogin = nil; held.waiter.promise.fail(error) }
        let live = streams
        streams = [:]
        for (_, s) in live {
            if clean && s.remoteFinished { s.closedCleanly() } else { s.terminate(error) }
        }
    }

    /// The handshake (or the first reply) did not come in time: end the attempt.
    func timeOut(after limit: TimeAmount) {
        eventLoop.assertInEventLoop()
        guard ended == nil else { return }
        endOverride = ErrorText.timedOut(server: server, handshakeDone: pattern != nil, limit: limit)
        if let handler {
            handler.close(code: .handshakeTimeout)
        } else {
            channel?.close(promise: nil)
        }
    }

    /// The raw close reason (for the handshake probe).
    var sessionCloseReason: USPError? { closeReason }

    // MARK: - Calls from the async API (on the event loop)

    /// Sends a service request; the future completes with the reply (and, after a successful
    /// login, the menu that follows it).
    func request(_ services: [ServiceIndex: [String: JSONValue]], authentication: AuthenticationRequest?,
                 expectsMenu: Bool, clientIP: String? = nil) -> EventLoopFuture<ServiceReplyAndMenu> {
        eventLoop.assertInEventLoop()
        let promise = eventLoop.makePromise(of: ServiceReplyAndMenu.self)
        if let ended { promise.fail(ended); return promise.futureResult }
        guard let handler, handler.state == .established else {
            promise.fail(USPClientError(.connectionLost, "the connection to \(server.hostPort) is not ready"))
            return promise.futureResult
        }
        replyWaiters.append(ReplyWaiter(promise: promise, expectsMenu: expectsMenu))
        do {
            try handler.withSession { session, _ throws(USPError) in
                try session.requestServices(services, authentication: authentication, clientIP: clientIP)
            }
        } catch {
            // The request never left: take our waiter back (it is the last one).
            if replyWaiters.last.map({ $0.promise.futureResult === promise.futureResult }) ?? false { _ = replyWaiters.popLast() }
            promise.fail(ErrorText.local(error, server: server))
        }
        return promise.futureResult
    }

    /// Opens a stream with an application token; completes once the server accepts it.
    func openStream(token: String) -> EventLoopFuture<StreamCore> {
        eventLoop.assertInEventLoop()
        if let ended { return eventLoop.makeFailedFuture(ended) }
        guard let handler, handler.state == .established else {
            return eventLoop.makeFailedFuture(USPClientError(.connectionLost, "the connection to \(server.hostPort) is not ready"))
        }
        do {
            let id = try handler.withSession { session, _ throws(USPError) in try session.openStream(applicationToken: token) }
            let stream = StreamCore(id: id, core: self)
            streams[id] = stream
            return stream.acceptance.futureResult.map { stream }
        } catch {
            return eventLoop.makeFailedFuture(ErrorText.local(error, server: server))
        }
    }

    /// Registers the dedicated connection's stream (stream 1) before the handshake, so that
    /// nothing the server sends for it is missed.
    func registerDedicatedStream() -> StreamCore {
        let stream = StreamCore(id: 1, core: self)
        streams[1] = stream
        dedicatedStream = stream
        return stream
    }

    func write(_ stream: StreamCore, _ buffer: ByteBuffer, promise: EventLoopPromise<Void>) {
        eventLoop.assertInEventLoop()
        guard !stream.localFinishQueued else {
            promise.fail(USPClientError(.invalidArgument, "write after finish(): this side of the stream is closed"))
            return
        }
        if let error = stream.writeError {
            promise.fail(error)
            return
        }
        guard buffer.readableBytes > 0 else { promise.succeed(()); return }
        stream.writes.append(.data(buffer, promise))
        drainWrites(stream)
    }

    func finish(_ stream: StreamCore, promise: EventLoopPromise<Void>) {
        eventLoop.assertInEventLoop()
        if stream.localFinishQueued { promise.succeed(()); return }
        if let error = stream.writeError {
            // A stream the server already closed cleanly needs no FIN.
            if stream.isClosedCleanly { promise.succeed(()) } else { promise.fail(error) }
            return
        }
        stream.localFinishQueued = true
        stream.writes.append(.finish(promise))
        drainWrites(stream)
    }

    /// Aborts a stream (RESET) if it is still open.
    func reset(_ stream: StreamCore, code: USPError.Code) {
        eventLoop.assertInEventLoop()
        guard streams[stream.id] === stream, let handler else { return }
        streams[stream.id] = nil
        _ = try? handler.withSession { session, actions throws(USPError) in
            try session.reset(stream: stream.id, code: code, into: &actions)
        }
        stream.terminate(USPClientError(.streamReset, "the stream was closed"))
    }

    /// The reader took `count` bytes: return the credit (WINDOW) when the session says so.
    func consumed(_ stream: StreamCore, count: Int) {
        eventLoop.assertInEventLoop()
        guard count > 0, ended == nil, streams[stream.id] === stream, let handler else { return }
        _ = try? handler.withSession { session, _ throws(USPError) in try session.consumed(stream: stream.id, count: count) }
    }

    /// Sends `requested_services` style token invalidation, etc. are in `request`; this ends the session.
    func closeSession() {
        eventLoop.assertInEventLoop()
        if let handler, ended == nil {
            handler.close(code: .ok)
        } else {
            channel?.close(promise: nil)
        }
    }

    // MARK: - Writes

    private func drainWrites(_ s: StreamCore) {
        guard let handler else { return }
        while let first = s.writes.first {
            switch first {
            case .data(var buffer, let promise):
                let n: Int
                do {
                    n = try handler.withSession { session, _ throws(USPError) -> Int in
                        try buffer.withUnsafeReadableBytes { (bytes) throws(USPError) -> Int in
                            try session.write(stream: s.id, bytes)
                        }
                    }
                } catch {
                    s.writes.removeFirst()
                    promise.fail(ErrorText.local(error, server: server))
                    continue
                }
                buffer.moveReaderIndex(forwardBy: n)
                if buffer.readableBytes == 0 {
                    s.writes.removeFirst()
                    promise.succeed(())
                } else {
                    s.writes[s.writes.startIndex] = .data(buffer, promise)
                    // No credit left: wait for the server's WINDOW (streamWritable), unless the
                    // stream or session is gone, which fails the writes.
                    if let error = s.writeError { s.failWrites(error) }
                    return
                }
            case .finish(let promise):
                s.writes.removeFirst()
                do {
                    try handler.withSession { session, actions throws(USPError) in
                        try session.finish(stream: s.id, into: &actions)
                    }
                    s.localFinished = true
                    promise.succeed(())
                } catch {
                    promise.fail(ErrorText.local(error, server: server))
                }
            }
        }
    }
}

/// A service reply, and the new menu when it was a successful login.
struct ServiceReplyAndMenu: Sendable {
    let reply: ServiceReply
    let menu: ApplicationMenu?
}

/// One stream, on the event loop: the reader's queue, the writer's queue, and how it ended.
final class StreamCore: @unchecked Sendable {
    let id: UInt32
    unowned let core: ConnectionCore
    let acceptance: EventLoopPromise<Void>
    let inbound: AsyncThrowingStream<ByteBuffer, any Error>
    private let continuation: AsyncThrowingStream<ByteBuffer, any Error>.Continuation

    enum PendingWrite {
        case data(ByteBuffer, EventLoopPromise<Void>)
        case finish(EventLoopPromise<Void>)
    }
    var writes = CircularBuffer<PendingWrite>()
    var localFinishQueued = false
    var localFinished = false
    private(set) var remoteFinished = false
    /// Set when the stream can no longer be written (reset, closed, session over).
    private(set) var writeError: USPClientError?
    private(set) var isClosedCleanly = false

    init(id: UInt32, core: ConnectionCore) {
        self.id = id
        self.core = core
        acceptance = core.eventLoop.makePromise(of: Void.self)
        (inbound, continuation) = AsyncThrowingStream.makeStream(of: ByteBuffer.self, throwing: (any Error).self)
    }

    func accepted() { acceptance.succeed(()) }

    func receive(_ data: ByteBuffer) { continuation.yield(data) }

    func peerFinished() {
        remoteFinished = true
        continuation.finish()
    }

    /// Both sides sent FIN (or a clean session end after the peer's FIN).
    func closedCleanly() {
        isClosedCleanly = true
        remoteFinished = true
        continuation.finish()
        acceptance.fail(USPClientError(.connectionLost, "the stream closed before it was accepted"))
        let error = USPClientError(.streamReset, "the stream is closed")
        writeError = error
        failWrites(error)
    }

    /// The stream ended abnormally: reset, refused, or the session died.
    func terminate(_ error: USPClientError) {
        acceptance.fail(error)
        writeError = error
        if !remoteFinished { continuation.finish(throwing: error) } else { continuation.finish() }
        failWrites(error)
    }

    func failWrites(_ error: USPClientError) {
        while let w = writes.popFirst() {
            switch w {
            case .data(_, let p), .finish(let p): p.fail(error)
            }
        }
    }
}
