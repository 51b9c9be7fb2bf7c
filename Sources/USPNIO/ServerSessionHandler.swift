import NIOCore
import USPCore

/// Drives one `ServerSession` over one TCP connection. Thin, in the manner of `NIOSSHHandler`: it
/// feeds inbound bytes to the session, writes what the session has to send, enforces the
/// **absolute** handshake deadline from a scheduled task (a client that trickles one byte at a time
/// is still cut off), reports end of input, and hands stream events to one
/// `ServerStreamApplication` per stream. Policy, audit, launching and revocation across sessions
/// belong to the `ServerSessionHooks`.
///
/// Before the handshake finishes the server writes nothing on any failure (the core guarantees it):
/// a stranger sending garbage, or nothing, gets silence and a close at the deadline.
///
/// Everything runs on the channel's event loop; applications attached to streams must run there too
/// (their channels are created on `context.eventLoop`), so no locks are needed.
public final class ServerSessionHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    public struct Configuration: Sendable {
        /// From accept to the menu (or application reply): the handshake **and** the initial request
        /// must be done by then. Absolute, not an idle timer.
        public var handshakeTimeout: TimeAmount
        /// After the handshake: a session with no open stream that receives nothing for this long
        /// is closed with `idle_timeout`. Nil: never. Sessions with a stream are never idle-closed
        /// (an ssh session may sit quiet for hours).
        public var idleTimeout: TimeAmount?
        /// A session that has not logged in and has no open stream is closed with `idle_timeout`
        /// this long after it was accepted, whatever it sends (a PING does not keep it): strangers
        /// cannot hold connection slots by idling on the menu. Nil: no limit.
        public var anonymousLifetime: TimeAmount?
        /// Stealth: a connection that has not been answered (its message 1 was not IK or NK under
        /// the server key, or never came whole) is put on a silent hold rather than closed, and is
        /// ended with a FIN at `silentHold.until` whatever it sent (docs/PROTOCOL.md §3.3). Nil:
        /// such connections are closed as soon as the session fails.
        public var silentHold: SilentHold?
        public init(handshakeTimeout: TimeAmount = .seconds(10), idleTimeout: TimeAmount? = nil, anonymousLifetime: TimeAmount? = nil,
                    silentHold: SilentHold? = nil) {
            self.handshakeTimeout = handshakeTimeout
            self.idleTimeout = idleTimeout
            self.anonymousLifetime = anonymousLifetime
            self.silentHold = silentHold
        }
    }

    private struct StreamEntry {
        var application: (any ServerStreamApplication)?
        let grant: ApplicationGrant
        let openedAt: Double
        var bytesIn: Int64 = 0
        var bytesOut: Int64 = 0
    }

    private var session: ServerSession
    private let policy: any ServerSessionDelegate
    private let hooks: any ServerSessionHooks
    private let configuration: Configuration
    private var context: ChannelHandlerContext?
    private var deadline: Scheduled<Void>?
    /// Stealth: when a connection that has not been answered goes silent (see `silentHold`).
    private var silentDeadline: Scheduled<Void>?
    /// Action buffers, reused: each call into the session takes one, so a call made while the
    /// actions of another are being carried out (an application writing as it gets data) has its own.
    private var spareActions: [ServerActions] = []
    private var streams: [UInt32: StreamEntry] = [:]
    /// Reasons the session is suspended (a late answer to a failed login, a grant waiting for the
    /// disk): while any is pending nothing is sent and input is kept unread.
    private var holds = 0
    private var holding: Bool { holds > 0 }
    private var heldInput: ByteBuffer?
    /// The client sent its FIN; handled once held input has been.
    private var inputEnded = false
    private var reportedEstablished = false
    private var reportedClosed = false
    private var closingChannel = false
    private let startedAt = ServerClock.monotonic()
    private var bytesIn: Int64 = 0
    private var bytesOut: Int64 = 0
    private var clientStatic: [UInt8]?
    private var pattern: HandshakeLayout.Pattern?
    private let allocator = ByteBufferAllocator()
    private var lastWrite: EventLoopFuture<Void>?
    private var idleCheck: Scheduled<Void>?
    /// When input last arrived (ServerClock.monotonic seconds).
    private var lastInput: Double = ServerClock.monotonic()
    /// The session logged in (at index 0 or with an authorization token): no anonymous lifetime.
    private var loggedIn = false
    /// A relay-free hand-off is under way: input is held in `heldInput`, nothing is sent.
    private var handingOff = false
    /// The connection was handed to an application relay-free.
    public private(set) var handedOff = false
    /// Open streams whose application is shaped, and the ticker that runs while there are any.
    private var shapedStreams: Set<UInt32> = []
    private var ticker = ShapingTicker()

    public init(session: ServerSession, policy: any ServerSessionDelegate, hooks: any ServerSessionHooks,
                configuration: Configuration = Configuration()) {
        self.session = session
        self.policy = policy
        self.hooks = hooks
        self.configuration = configuration
    }

    // MARK: - Facts

    public var serverSessionID: String { session.serverSessionID }
    public var peerAddress: String { session.peerAddress }
    public var state: ServerSession.State { session.state }
    public var identity: Identity? { session.identity }
    public var openStreamCount: Int { streams.count }
    /// A stream is open, or opened by the session and about to be handed to its application.
    public var hasStreams: Bool { !streams.isEmpty || session.openStreamCount > 0 }
    /// Message 1 was a fresh IK/NK initiation: the client knows the server key (no replay).
    public var freshInitiation: Bool { session.freshInitiation }
    public var info: ServerSessionInfo {
        ServerSessionInfo(serverSessionID: session.serverSessionID, peerAddress: session.peerAddress,
                          clientStatic: clientStatic, identity: session.identity)
    }
    public var eventLoop: (any EventLoop)? { context?.eventLoop }

    /// What an administrator sees of this session now (`uspd sessions`). Call on its event loop.
    public func snapshot(now: Double = ServerClock.monotonic()) -> ServerSessionSnapshot {
        ServerSessionSnapshot(
            serverSessionID: session.serverSessionID, peerAddress: session.peerAddress, identity: session.identity,
            clientStatic: clientStatic, pattern: pattern, state: session.state, age: now - startedAt, idle: now - lastInput,
            bytesIn: bytesIn, bytesOut: bytesOut, shaped: !shapedStreams.isEmpty,
            streams: streams.sorted { $0.key < $1.key }.map { id, entry in
                ServerSessionSnapshot.Stream(id: id, application: entry.grant.application, tokenID: entry.grant.tokenID,
                                             authorizationTokenID: entry.grant.authorizationTokenID,
                                             age: now - entry.openedAt, bytesIn: entry.bytesIn, bytesOut: entry.bytesOut)
            })
    }

    /// The textual IP address of a socket address, with IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`,
    /// which a dual-stack listener reports) written as plain IPv4, so a token bound to an address
    /// matches however the client reached the server.
    public static func peerAddress(of address: SocketAddress?) -> String {
        guard var text = address?.ipAddress else { return "unknown" }
        let mapped = "::ffff:"
        if text.lowercased().hasPrefix(mapped), text.contains(".") { text.removeFirst(mapped.count) }
        return text
    }

    // MARK: - Channel events

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard deadline == nil, !reportedClosed else { return }
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.handshakeTimeout) { [self] in
            deadlinePassed()
        }
        if let hold = configuration.silentHold {
            // A client that has not been answered by then never will be: its message 1 is still
            // incomplete. It ends like every other stranger's connection.
            silentDeadline = context.eventLoop.assumeIsolated().scheduleTask(deadline: hold.until) { [self] in
                silentDeadline = nil
                if bytesOut == 0, !reportedClosed { close(code: .handshakeTimeout) }
            }
        }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        lastInput = ServerClock.monotonic()
        guard !reportedClosed else { return }
        if holding || handingOff {
            if heldInput == nil { heldInput = buffer } else { heldInput!.writeBuffer(&buffer) }
            return
        }
        feed(buffer)
    }

    /// The client's FIN (the channel allows half-closure): the session still answers a connection
    /// that ended inside a record with a CLOSE (`record_truncated`) before closing. Input held
    /// back (a login answered late, a grant waiting for the disk, a hand-off) is handled first.
    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case ChannelEvent.inputClosed = event else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        inputEnded = true
        guard !holding, !handingOff else { return }
        endInput()
    }

    private func endInput() {
        guard !reportedClosed else { return }
        if session.state != .closed {
            perform { session.endOfInput(into: &$0) }
        }
        flush()
        // Whatever the session made of it, nothing more can come: the session is over.
        sessionOver(nil)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if session.state != .closed {
            perform { session.endOfInput(into: &$0) }
        }
        sessionOver(nil)
        deadline?.cancel()
        self.context = nil
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A socket error: the connection is unusable. Nothing is sent.
        if session.state != .closed {
            perform { session.endOfInput(into: &$0) }
        }
        context.close(promise: nil)
    }

    // MARK: - Server-side operations (call on the event loop)

    /// Ends every stream opened under these tokens (a revocation from another session, or a
    /// login's expiry: `code` `token_expired`).
    public func revoke(tokenIDs: Set<TokenProof.TokenID>, code: USPError.Code = .tokenRevoked) {
        guard !reportedClosed else { return }
        performThrowing { (actions) throws(USPError) in try session.revoke(tokenIDs: tokenIDs, code: code, into: &actions) }
        flush()
    }

    /// Closes the session with a CLOSE frame carrying `code` (e.g. `shutting_down` on drain).
    /// Before the handshake finishes, the connection is closed without a word.
    public func close(code: USPError.Code) {
        guard !reportedClosed else { return }
        perform { session.close(code: code, into: &$0) }
        flush()
        if !reportedClosed { sessionOver(USPError(code, "closed by the server")) }
    }

    // MARK: - Stream operations (through ServerStreamPort)

    func streamWrite(_ stream: UInt32, _ buffer: inout ByteBuffer) -> Int {
        guard streams[stream] != nil, !reportedClosed else { return 0 }
        var taken = 0
        do {
            taken = try buffer.withUnsafeReadableBytes { bytes throws(USPError) in try session.write(stream: stream, bytes) }
        } catch {
            perform { session.close(code: (error as USPError).code, into: &$0) }
        }
        buffer.moveReaderIndex(forwardBy: taken)
        streams[stream]?.bytesOut += Int64(taken)
        flush()
        return taken
    }

    func streamSendable(_ stream: UInt32) -> Int {
        guard streams[stream] != nil, !reportedClosed else { return 0 }
        return session.sendableBytes(stream: stream)
    }

    func streamConsumed(_ stream: UInt32, _ count: Int) {
        guard !reportedClosed, count > 0 else { return }
        do throws(USPError) {
            try session.consumed(stream: stream, count: count)
        } catch {
            perform { session.close(code: error.code, into: &$0) }
        }
        flush()
    }

    func streamFinish(_ stream: UInt32) {
        guard !reportedClosed else { return }
        performThrowing { (actions) throws(USPError) in try session.finish(stream: stream, into: &actions) }
        flush()
    }

    func streamReset(_ stream: UInt32, code: USPError.Code) {
        guard !reportedClosed else { return }
        performThrowing { (actions) throws(USPError) in try session.reset(stream: stream, code: code, into: &actions) }
        flush()
    }

    // MARK: - Relay-free hand-off (through ServerStreamPort; docs/PROTOCOL.md §14)

    func streamBeginHandoff(_ stream: UInt32, undelivered: [UInt8], completion: @escaping (Result<RelayFreeHandoff, USPError>) -> Void) {
        guard let context, !reportedClosed, !holding, !handingOff, streams[stream] != nil else {
            completion(.failure(USPError(.internalError, "the session is closing, holding its replies or already handing off")))
            return
        }
        guard session.dedicatedStream == stream, session.openStreamCount == 1 else {
            completion(.failure(USPError(.internalError, "not a dedicated connection (the stream was opened with OPEN on a menu connection)")))
            return
        }
        guard let local = context.channel.localAddress, let remote = context.channel.remoteAddress else {
            completion(.failure(USPError(.internalError, "the channel has no addresses")))
            return
        }
        // Stop reading (what NIO has already read is held), send what is pending, and take the
        // snapshot once every byte sent is in the kernel: nothing of the session stays in NIO.
        handingOff = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        flush()
        whenWritten { [self] result in
            guard handingOff, !reportedClosed else {
                completion(.failure(USPError(.internalError, "the connection closed during the hand-off")))
                return
            }
            if case .failure(let error) = result {
                streamFailHandoff(stream)
                completion(.failure(USPError(.internalError, "writing to the client failed: \(error)")))
                return
            }
            do throws(USPError) {
                let held = heldInput.map { Array($0.readableBytesView) } ?? []
                let snapshot = try session.beginHandoff(undeliveredData: undelivered, unreadInput: held)
                completion(.success(RelayFreeHandoff(snapshot: snapshot, localAddress: local, remoteAddress: remote)))
            } catch {
                streamFailHandoff(stream)
                completion(.failure(error))
            }
        }
    }

    /// Calls `body` once every byte handed to NIO is written, including bytes written meanwhile.
    private func whenWritten(_ body: @escaping (Result<Void, any Error>) -> Void) {
        guard let waited = lastWrite else { body(.success(())); return }
        waited.assumeIsolated().whenComplete { [self] result in
            if case .success = result, let latest = lastWrite, latest !== waited {
                whenWritten(body)
            } else {
                body(result)
            }
        }
    }

    func streamCompleteHandoff(_ stream: UInt32) {
        guard handingOff, !reportedClosed else { return }
        handingOff = false
        handedOff = true
        heldInput = nil
        if let entry = streams.removeValue(forKey: stream) {
            hooks.streamHandedOff(self, stream: stream, grant: entry.grant, bytesIn: entry.bytesIn, bytesOut: entry.bytesOut,
                                  seconds: ServerClock.monotonic() - entry.openedAt)
        }
        // The session reports `.closed(nil)`: sessionOver closes the channel, which is close(2)
        // of this descriptor only; the application's copy keeps the connection.
        perform { session.handoffAcknowledged(into: &$0) }
    }

    func streamFailHandoff(_ stream: UInt32) {
        guard handingOff else { return }
        handingOff = false
        guard !reportedClosed else { return }
        if session.state == .handingOff { session.handoffFailed() }
        context?.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        flush()
        if let held = heldInput {
            heldInput = nil
            feed(held)
        }
        if inputEnded, !holding { endInput() }
    }

    // MARK: - Internals

    private func feed(_ buffer: ByteBuffer) {
        bytesIn += Int64(buffer.readableBytes)
        perform { actions in
            buffer.withUnsafeReadableBytes { bytes in
                session.receive(bytes, now: ServerClock.now(), delegate: policy, into: &actions)
            }
        }
        noteEstablished()
        holdUntilDurable()
        if !reportedClosed, let delay = hooks.replyDelay(self), delay > .zero {
            hold(for: delay)
        }
        flush()
    }

    /// A slow login: stop reading, let the hooks check it off the loop, then resume the session
    /// with the outcome (answered late after a failure, like any login).
    private func checkLoginElsewhere(_ fields: [String: JSONValue], _ ctx: SessionContext) {
        guard let context else { return }
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        hooks.authenticate(fields: fields, context: ctx, policy: policy, on: loop).whenComplete { result in
            let me = bound.value
            guard !me.reportedClosed else { return }
            let outcome = (try? result.get()) ?? .failure(USPError(.internalError, "the login check failed"))
            me.perform { me.session.completeAuthentication(outcome, now: ServerClock.now(), delegate: me.policy, into: &$0) }
            me.holdUntilDurable()
            if !me.reportedClosed, let delay = me.hooks.replyDelay(me), delay > .zero {
                me.hold(for: delay)
            }
            if !me.reportedClosed, !me.holding {
                me.context?.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            }
            me.flush()
        }
    }

    private func noteEstablished() {
        guard !reportedEstablished, session.state == .established else { return }
        reportedEstablished = true
        deadline?.cancel()
        deadline = nil
        startIdleCheck()
        hooks.sessionEstablished(self)
    }

    /// Checks a quarter of the idle timeout (or of the anonymous lifetime, while the session has
    /// not logged in) apart, so a session is closed between 1 and 1.25 of either after its last
    /// input or its accept; reads only note the time (no timer per read).
    private func startIdleCheck() {
        let first = [configuration.idleTimeout, configuration.anonymousLifetime].compactMap { $0 }.min()
        guard let first else { return }
        scheduleIdleCheck(in: first)
    }

    private func scheduleIdleCheck(in delay: TimeAmount) {
        guard let context, !reportedClosed else { return }
        idleCheck = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            idleCheck = nil
            guard !reportedClosed else { return }
            let now = ServerClock.monotonic()
            func passed(_ limit: TimeAmount?, since start: Double) -> Bool {
                limit.map { now - start >= Double($0.nanoseconds) / 1e9 } ?? false
            }
            if streams.isEmpty, passed(configuration.idleTimeout, since: lastInput)
                || (!loggedIn && passed(configuration.anonymousLifetime, since: startedAt)) {
                close(code: .idleTimeout)
                return
            }
            let limits = [configuration.idleTimeout, loggedIn ? nil : configuration.anonymousLifetime].compactMap { $0 }
            guard let step = limits.min() else { return }
            scheduleIdleCheck(in: .nanoseconds(max(step.nanoseconds / 4, 1_000_000)))
        }
    }

    /// Holds this session's replies and further input for `delay` (a failed login is answered late).
    private func hold(for delay: TimeAmount) {
        guard let context else { return }
        suspend()
        context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in resume() }
    }

    /// Holds this session's replies and further input until a grant it made is on disk. If that
    /// fails, the grant never leaves: the connection closes without a word (audit fails closed).
    private func holdUntilDurable() {
        guard let context, !reportedClosed, let barrier = hooks.durabilityBarrier(self) else { return }
        suspend()
        barrier.hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success:
                resume()
            case .failure(let error):
                guard !reportedClosed else { return }
                session.drainOutbound { _ in }
                sessionOver(USPError(.internalError, "a grant could not be made durable: \(error)"))
            }
        }
    }

    private func suspend() {
        if holds == 0 { context?.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in } }
        holds += 1
    }

    private func resume() {
        guard holds > 0 else { return }
        holds -= 1
        guard holds == 0, !reportedClosed else { return }
        context?.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        flush()
        if let held = heldInput {
            heldInput = nil
            feed(held)
        }
        if inputEnded, !holding { endInput() }
    }

    private func deadlinePassed() {
        deadline = nil
        switch session.state {
        case .awaitingMessage1, .awaitingMessage3:
            perform { session.handshakeDeadlinePassed(into: &$0) }
        case .awaitingInitialRequest:
            perform { session.close(code: .handshakeTimeout, into: &$0) }
        case .established, .handingOff, .closed:
            return
        }
        flush()
    }

    /// Calls into the session with an actions buffer of its own, then carries the actions out.
    private func perform(_ call: (inout ServerActions) -> Void) {
        var actions = spareActions.popLast() ?? ServerActions()
        call(&actions)
        carryOut(actions)
        actions.removeAll()
        spareActions.append(actions)
    }

    /// The same for an application-side call, which throws on a local failure: the session is
    /// then closed with the error's code.
    private func performThrowing(_ call: (inout ServerActions) throws(USPError) -> Void) {
        perform { actions in
            do throws(USPError) { try call(&actions) } catch { session.close(code: error.code, into: &actions) }
        }
    }

    private func carryOut(_ actions: ServerActions) {
        // Streams given bytes by these actions are told `receivedBatchEnded` after them (one flush
        // for several records); usually there is one.
        var fed: UInt32?
        var alsoFed: [UInt32] = []
        for action in actions {
            switch action {
            case .handshakeCompleted(let pattern, let key, _):
                clientStatic = key
                self.pattern = pattern
                hooks.handshakeCompleted(self, pattern: pattern, clientStatic: key)
            case .authenticated(let who, let tokenID):
                loggedIn = true
                hooks.authenticated(self, identity: who, tokenID: tokenID)
            case .streamOpened(let stream, let grant):
                open(stream, grant)
            case .streamData(let stream, let data):
                if let application = streams[stream]?.application {
                    streams[stream]!.bytesIn += Int64(data.count)
                    application.received(data.withUnsafeBytes { allocator.buffer(bytes: $0) })
                    if fed == nil { fed = stream } else if fed != stream, !alsoFed.contains(stream) { alsoFed.append(stream) }
                } else {
                    // No application (refused or gone): drop the bytes but keep the credit flowing.
                    streamConsumed(stream, data.count)
                }
            case .streamFinished(let stream):
                streams[stream]?.application?.clientFinished()
            case .streamWritable(let stream):
                streams[stream]?.application?.writable()
            case .streamClosed(let stream, let code):
                if shapedStreams.remove(stream) != nil, shapedStreams.isEmpty { stopShaping() }
                guard let entry = streams.removeValue(forKey: stream) else { continue }
                entry.application?.closed(code: code)
                hooks.streamClosed(self, stream: stream, grant: entry.grant, code: code, bytesIn: entry.bytesIn,
                                   bytesOut: entry.bytesOut, seconds: ServerClock.monotonic() - entry.openedAt)
            case .tokensInvalidated(let ids):
                hooks.tokensInvalidated(self, ids)
            case .authenticationRequested(let fields, let ctx):
                checkLoginElsewhere(fields, ctx)
            case .closed(let error):
                sessionOver(error)
            }
        }
        if let fed { streams[fed]?.application?.receivedBatchEnded() }
        for stream in alsoFed { streams[stream]?.application?.receivedBatchEnded() }
    }

    private func open(_ stream: UInt32, _ grant: ApplicationGrant) {
        streams[stream] = StreamEntry(application: nil, grant: grant, openedAt: ServerClock.monotonic())
        guard let loop = context?.eventLoop else { streamReset(stream, code: .streamRefused); return }
        let port = ServerStreamPort(stream: stream, eventLoop: loop, handler: self)
        switch hooks.openApplication(port, grant: grant, session: info) {
        case .success(let application):
            if streams[stream] != nil { streams[stream]!.application = application } else { application.closed(code: .streamRefused) }
            if streams[stream] != nil, let profile = hooks.shapingProfile(for: grant) { startShaping(stream, profile) }
        case .failure(let refusal):
            streams[stream] = nil
            streamReset(stream, code: refusal.code)
        }
    }

    // MARK: - Traffic shaping (docs/PROTOCOL.md §4.1)

    /// A shaped application's stream opened: shape the connection (SHAPE to the client) and tick.
    private func startShaping(_ stream: UInt32, _ profile: ShapingProfile) {
        shapedStreams.insert(stream)
        guard let loop = context?.eventLoop, session.shaping != profile else { return }
        do throws(USPError) {
            try session.startShaping(profile)
        } catch {
            perform { session.close(code: error.code, into: &$0) }
            return
        }
        ticker.start(profile, on: loop) { [weak self] in self?.tick() }
    }

    /// The last shaped stream closed: SHAPE(0, 0), and what waits leaves at once.
    private func stopShaping() {
        ticker.stop()
        performThrowing { (actions) throws(USPError) in try session.stopShaping(into: &actions) }
        flush()
    }

    private func tick() {
        guard !reportedClosed else { ticker.stop(); return }
        performThrowing { (actions) throws(USPError) in try session.tick(into: &actions) }
        flush()
    }

    /// The session ended: stop every application, send what is pending (a CLOSE frame), close.
    private func sessionOver(_ error: USPError?) {
        guard !reportedClosed else { return }
        reportedClosed = true
        ticker.stop()
        deadline?.cancel()
        deadline = nil
        silentDeadline?.cancel()
        silentDeadline = nil
        idleCheck?.cancel()
        idleCheck = nil
        holds = 0
        let code = error?.code ?? .ok
        let remaining = streams
        streams = [:]
        for (stream, entry) in remaining.sorted(by: { $0.key < $1.key }) {
            entry.application?.closed(code: code)
            hooks.streamClosed(self, stream: stream, grant: entry.grant, code: code, bytesIn: entry.bytesIn,
                               bytesOut: entry.bytesOut, seconds: ServerClock.monotonic() - entry.openedAt)
        }
        flush()
        if let hold = configuration.silentHold, bytesOut == 0, !handedOff {
            goSilent(hold)
        } else {
            closeChannel()
        }
        hooks.sessionClosed(self, error: error, bytesIn: bytesIn, bytesOut: bytesOut, seconds: ServerClock.monotonic() - startedAt)
    }

    private func flush() {
        guard let context, !holding || reportedClosed, session.outboundByteCount > 0 else { return }
        var buffer = context.channel.allocator.buffer(capacity: session.outboundByteCount)
        _ = session.drainOutbound { buffer.writeBytes($0) }
        bytesOut += Int64(buffer.readableBytes)
        lastWrite = context.writeAndFlush(wrapOutboundOut(buffer))
    }

    /// Stealth: this connection was never answered. It is not closed now (that would tell the
    /// client when and why it failed) but handed to a `SilentHoldHandler`, which ends it at the
    /// time drawn at accept. This handler leaves the pipeline.
    private func goSilent(_ hold: SilentHold) {
        guard let context, !closingChannel else { return }
        closingChannel = true
        guard context.channel.isActive else { context.close(promise: nil); return }
        do {
            try hold.install(on: context.channel, peer: peerAddress)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }

    private func closeChannel() {
        guard let context, !closingChannel else { return }
        closingChannel = true
        // Close once the last write is done, so a CLOSE frame still goes out first.
        guard let lastWrite else { context.close(promise: nil); return }
        let channel = context.channel
        lastWrite.whenComplete { _ in channel.close(promise: nil) }
    }
}
