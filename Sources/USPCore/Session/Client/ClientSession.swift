/// The client side of a USP connection, sans I/O: bytes in, sealed bytes and actions out.
///
/// ```
///  idle ──start──▶ awaitingMessage2 ──IK/NK message 2──▶ awaitingReply ──menu / application reply──▶ established
///                        │                                  ▲
///                        └──XX message 2, key accepted, message 3 sent──┘
///  every state ──error, CLOSE, end of input──▶ closed
/// ```
///
/// With a known server key (IK or NK) the initial request, and for a dedicated application
/// connection the first stream bytes, ride in message 1, so the first reply comes one round trip
/// after the TCP handshake. Token secrets never leave the session: it sends presentations bound to
/// the channel (docs/PROTOCOL.md §6.4).
///
/// Each phase carries only its own data (`Machine`): before `start` the initiator; during the
/// handshake the initiator, the bytes so far and what message 1 asked for (`ClientHandshaking`);
/// then the transport, the menu and the streams (`ClientTransport`).
public struct ClientSession {
    public enum State: Equatable, Sendable {
        /// Not started.
        case idle
        /// Message 1 sent; waiting for the 160 bytes of message 2.
        case awaitingMessage2
        /// Handshake done, initial request sent; waiting for the menu or the application_session reply.
        case awaitingReply
        /// Serving requests and streams.
        case established
        /// Over.
        case closed
    }

    /// The phase with its data.
    enum Machine {
        /// Not started: message 1 is not written yet.
        case idle(InitiatorHandshake)
        /// Message 1 sent; waiting for message 2.
        case awaitingMessage2(ClientHandshaking)
        /// The handshake is done: from the reply to the end (closed included, so what is left to
        /// send still drains and the session's facts stay readable).
        case transport(TransportBox<ClientTransport>)
        /// Ended before the handshake finished; `unsent`: message 1 if not drained yet.
        case closedInHandshake(unsent: [UInt8])
        /// Only while a phase's data is taken out to be changed in place (no copy of its buffers).
        case modifying
    }

    var machine: Machine
    public let configuration: SessionConfiguration
    public let clientSessionID: String
    /// The handshake pattern the mode chose (XX, IK or NK).
    public let pattern: HandshakeLayout.Pattern

    public init(mode: InitiatorHandshake.Mode, configuration: SessionConfiguration = SessionConfiguration(),
                random: any RandomSource = SystemRandomSource(), ephemeral: KeyPair? = nil) throws(USPError) {
        self.configuration = configuration
        let initiator = try InitiatorHandshake(mode: mode, random: random, ephemeral: ephemeral)
        pattern = initiator.pattern
        machine = .idle(initiator)
        clientSessionID = "c-" + Base64URL.encode(random.bytes(12))
    }

    // MARK: - Facts

    public var state: State {
        switch machine {
        case .idle: .idle
        case .awaitingMessage2: .awaitingMessage2
        case .transport(let box): box.value.state
        case .closedInHandshake: .closed
        case .modifying: preconditionFailure("the state is read while it is being changed")
        }
    }

    /// The transport's box, to read a fact through it without copying the transport.
    private var transport: TransportBox<ClientTransport>? {
        if case .transport(let box) = machine { return box }
        return nil
    }

    public var serverSessionID: String? { transport?.value.serverSessionID }
    public var menu: ApplicationMenu? { transport?.value.menu }
    /// The stream of a dedicated application connection (always 1).
    public var applicationStream: UInt32? { transport?.value.applicationStream }
    /// The handshake result once it is finished (its transport keys are the initial ones).
    public var handshake: HandshakeResult? { transport?.value.handshake }

    /// Runs `body` on the transport, taken out of the machine meanwhile so that its buffers are
    /// changed in place. nil before the handshake is done.
    private mutating func withTransport<R>(_ body: (inout ClientTransport) throws(USPError) -> R) throws(USPError) -> R? {
        guard case .transport(var box) = machine else { return nil }
        machine = .modifying
        defer { machine = .transport(box) }
        if !isKnownUniquelyReferenced(&box) { box = TransportBox(box.value) }
        return try body(&box.value)
    }

    /// The transport for a call that is only valid once the menu (or the application reply) arrived.
    private mutating func established<R>(_ what: String, _ body: (inout ClientTransport) throws(USPError) -> R) throws(USPError) -> R {
        guard case .transport(var box) = machine, box.value.state == .established else {
            preconditionFailure("\(what) after the menu arrived (state established)")
        }
        machine = .modifying
        defer { machine = .transport(box) }
        if !isKnownUniquelyReferenced(&box) { box = TransportBox(box.value) }
        return try body(&box.value)
    }

    // MARK: - Start

    /// Writes message 1. With IK or NK the initial request (and `initialData`) go in it when they fit.
    public mutating func start(_ request: ClientStart = ClientStart(), now: Timestamp) throws(USPError) {
        guard case .idle(let initiator) = machine else { preconditionFailure("start is called once") }
        let handshaking = try ClientHandshaking(initiator: initiator, start: request, sessionID: clientSessionID,
                                                hello: configuration.hello(now: now))
        machine = .awaitingMessage2(handshaking)
    }

    // MARK: - Input

    public mutating func receive(_ bytes: some Collection<UInt8>, now: Timestamp, delegate: some ClientSessionDelegate,
                                 into actions: inout ClientActions) {
        let copy = Array(bytes)
        copy.withUnsafeBytes { receive($0, now: now, delegate: delegate, into: &actions) }
    }

    public mutating func receive(_ bytes: UnsafeRawBufferPointer, now: Timestamp, delegate: some ClientSessionDelegate,
                                 into actions: inout ClientActions) {
        switch machine {
        case .idle:
            machine = .closedInHandshake(unsent: [])
            actions.append(.closed(USPError(.unexpectedMessage, "server spoke before message 1")))
        case .awaitingMessage2(var handshaking):
            machine = .modifying
            let done: ClientHandshaking.Finished?
            do throws(USPError) {
                done = try handshaking.consume(bytes, now: now, configuration: configuration, delegate: delegate)
            } catch {
                machine = .closedInHandshake(unsent: handshaking.unsent)
                actions.append(.closed(error))
                return
            }
            guard let done else {
                machine = .awaitingMessage2(handshaking)
                return
            }
            var t: ClientTransport
            do throws(USPError) {
                t = try ClientTransport(done, handshakeBytes: handshaking.unsent, start: handshaking.start,
                                        configuration: configuration, clientSessionID: clientSessionID)
            } catch {
                machine = .closedInHandshake(unsent: handshaking.unsent)
                actions.append(.closed(error))
                return
            }
            t.begin(done, earlySent: handshaking.earlySent, now: now, into: &actions)
            machine = .transport(TransportBox(t))
        case .transport:
            _ = try? withTransport { (t) throws(USPError) in t.receive(bytes, into: &actions) }
        case .closedInHandshake:
            return
        case .modifying:
            preconditionFailure("receive is not re-entrant")
        }
    }

    /// The server closed its side of the TCP connection.
    public mutating func endOfInput(into actions: inout ClientActions) {
        switch machine {
        case .idle, .awaitingMessage2:
            let unsent: [UInt8]
            if case .awaitingMessage2(let h) = machine { unsent = h.unsent } else { unsent = [] }
            machine = .closedInHandshake(unsent: unsent)
            actions.append(.closed(USPError(.unexpectedEOF,
                "server closed the connection during the handshake (wrong server key, stealth server, or not a USP server)")))
        case .transport:
            _ = try? withTransport { (t) throws(USPError) in t.endOfInput(into: &actions) }
        case .closedInHandshake:
            return
        case .modifying:
            preconditionFailure("endOfInput is not re-entrant")
        }
    }

    // MARK: - Requests and streams

    /// Sends `requested_services`: authentication or invalidation at index 0 and application requests.
    /// `authorizationToken` is a secret; the session sends a presentation bound to this connection.
    /// `clientIP` asks for brokered application tokens, for the client at that address.
    public mutating func requestServices(_ services: [ServiceIndex: [String: JSONValue]], authentication: AuthenticationRequest? = nil,
                                         authorizationToken: String? = nil, clientIP: String? = nil) throws(USPError) {
        try established("requestServices") { (t) throws(USPError) in
            try t.requestServices(services, authentication: authentication, authorizationToken: authorizationToken, clientIP: clientIP)
        }
    }

    /// Opens a stream on this connection with an application token secret. Returns the stream ID;
    /// data may be written at once, up to the server's window.
    public mutating func openStream(applicationToken: String) throws(USPError) -> UInt32 {
        try established("openStream") { (t) throws(USPError) in try t.openStream(applicationToken: applicationToken) }
    }

    /// Opens a stream on this connection for the application `name` on this session's menu; the
    /// server issues the application token (docs/PROTOCOL.md §7.1). Returns the stream ID.
    public mutating func openStream(application name: String, request: [String: JSONValue] = [:]) throws(USPError) -> UInt32 {
        try established("openStream") { (t) throws(USPError) in try t.openStream(application: name, request: request) }
    }

    /// Sends an `application_session` action (`end` or application-defined) for a token.
    public mutating func applicationAction(token: String, action: ApplicationAction, parameters: [String: JSONValue]? = nil) throws(USPError) {
        try established("applicationAction") { (t) throws(USPError) in
            try t.applicationAction(token: token, action: action, parameters: parameters)
        }
    }

    /// Sends bytes on `stream`, as much as the server's credit allows; returns the bytes taken.
    public mutating func write(stream: UInt32, _ data: UnsafeRawBufferPointer) throws(USPError) -> Int {
        try withTransport { (t) throws(USPError) in try t.write(stream: stream, data) } ?? 0
    }

    /// Sends bytes that `fill` writes straight into the record being composed (a read(2) from the
    /// caller's input, say), so they are copied once less than with `write(stream:_:)`: `fill` gets
    /// room for one DATA frame at a time, up to `limit` bytes in all and the server's credit, and
    /// returns how many bytes it wrote; a short fill ends the call. Returns the bytes taken; 0,
    /// without calling `fill`, when there is no credit (wait for `.streamWritable`).
    public mutating func write(stream: UInt32, upTo limit: Int, fill: (UnsafeMutableRawBufferPointer) -> Int) throws(USPError) -> Int {
        try withTransport { (t) throws(USPError) in try t.write(stream: stream, upTo: limit, fill: fill) } ?? 0
    }

    /// The caller took `count` bytes of `stream`: returns credit to the server when due.
    public mutating func consumed(stream: UInt32, count: Int) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in try t.consumed(stream: stream, count: count) }
    }

    /// Half-closes `stream`.
    public mutating func finish(stream: UInt32, into actions: inout ClientActions) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in try t.finish(stream: stream, into: &actions) }
    }

    /// Aborts `stream` with `code`.
    public mutating func reset(stream: UInt32, code: USPError.Code, into actions: inout ClientActions) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in try t.reset(stream: stream, code: code, into: &actions) }
    }

    public mutating func ping(_ value: UInt64) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in try t.ping(value) }
    }

    public mutating func close(code: USPError.Code = .ok, into actions: inout ClientActions) {
        switch machine {
        case .idle, .awaitingMessage2:
            let unsent: [UInt8]
            if case .awaitingMessage2(let h) = machine { unsent = h.unsent } else { unsent = [] }
            machine = .closedInHandshake(unsent: unsent)
            actions.append(.closed(code == .ok ? nil : USPError(code, "client closed the session")))
        case .transport:
            _ = try? withTransport { (t) throws(USPError) in t.close(code: code, into: &actions) }
        case .closedInHandshake:
            return
        case .modifying:
            preconditionFailure("close is not re-entrant")
        }
    }

    // MARK: - Traffic shaping (docs/PROTOCOL.md §4.1)

    /// One shaping tick (while the server has shaping on: `.shaping(profile)`): exactly one
    /// record's worth of bytes becomes ready to drain.
    public mutating func tick(into actions: inout ClientActions) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in
            for stream in try t.link.tick() { actions.append(.streamWritable(stream: stream)) }
        }
    }

    /// The profile in force, if the server turned shaping on.
    public var shaping: ShapingProfile? {
        if case .transport(let box) = machine { return box.value.link.shaping?.profile }
        return nil
    }

    // MARK: - Output

    /// Hands the bytes to send to `body` and forgets them (their storage is kept for reuse).
    public mutating func drainOutbound<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        switch machine {
        case .transport(var box):
            machine = .modifying
            defer { machine = .transport(box) }
            if !isKnownUniquelyReferenced(&box) { box = TransportBox(box.value) }
            return box.value.link.drain(body)
        case .awaitingMessage2(var h):
            machine = .modifying
            defer { machine = .awaitingMessage2(h) }
            return h.drain(body)
        case .closedInHandshake(let unsent):
            machine = .closedInHandshake(unsent: [])
            return unsent.withUnsafeBytes(body)
        case .idle:
            return [UInt8]().withUnsafeBytes(body)
        case .modifying:
            preconditionFailure("drainOutbound is not re-entrant")
        }
    }

    /// Frees buffer storage while nothing is pending (call when the connection goes idle).
    public mutating func releaseIdleStorage() {
        _ = try? withTransport { (t) throws(USPError) in t.link.releaseIdleStorage() }
    }

    /// Bytes waiting to be sent.
    public var outboundByteCount: Int {
        switch machine {
        case .idle: 0
        case .awaitingMessage2(let h): h.unsent.count
        case .transport(let box): box.value.link.outboundByteCount
        case .closedInHandshake(let unsent): unsent.count
        case .modifying: preconditionFailure("the outbound count is read while the state is being changed")
        }
    }

    // test hook: seals `plaintext` (frame bytes) as one record, unchecked, as a hostile peer would.
    mutating func _sendRawRecord(_ plaintext: [UInt8]) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in try t.link.sendRawRecord(plaintext) }
    }
}
