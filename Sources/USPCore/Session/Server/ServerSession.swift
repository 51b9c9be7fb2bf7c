/// The server side of a USP connection, sans I/O: bytes in, sealed bytes and actions out.
///
/// ```
///  awaitingMessage1 ──IK/NK message 1──▶ awaitingInitialRequest ──initial_request──▶ established
///        │                                   ▲                                          │
///        └──XX message 1 / message 2──▶ awaitingMessage3 ──message 3──┘                  │
///  every state ──error, CLOSE, end of input──▶ closed ◀──────────────────────────────────┘
///                                                    established ──beginHandoff──▶ handingOff
///                                  handingOff ──handoffFailed──▶ established, ──handoffAcknowledged──▶ closed
/// ```
///
/// Each phase carries only its own data (`Machine`): the handshake its responder and the bytes so
/// far (`ServerHandshaking`); the rest the transport, the request service's state and the streams
/// (`ServerTransport`, whose extensions hold the request service, the streams and the hand-off).
///
/// Every peer-caused problem is a `USPError` with a code: before the handshake finishes the
/// server answers nothing at all (darkness to strangers); after it, a CLOSE frame carries the code.
/// Policy is asked of a `ServerSessionDelegate`. Time comes in as `now`; the core reads no clock.
/// What the shell must do comes out as `ServerAction`s in a buffer it owns.
public struct ServerSession {
    /// The phase of the session, for observers. Each case documents what it waits for.
    public enum State: Equatable, Sendable {
        /// Waiting for the 1024 bytes of message 1. Nothing has been sent.
        case awaitingMessage1
        /// XX: message 2 sent; waiting for the 128 bytes of message 3.
        case awaitingMessage3
        /// Handshake done; waiting for the client's `initial_request` (only MESSAGE, PADDING, PING, PONG, REKEY, CLOSE allowed).
        case awaitingInitialRequest
        /// Menu sent or application session begun: serving requests and streams.
        case established
        /// A relay-free hand-off is under way (`beginHandoff`): the snapshot is out, so nothing is
        /// read or sent until `handoffAcknowledged` (→ closed) or `handoffFailed` (→ established).
        case handingOff
        /// Over. Further input is ignored.
        case closed
    }

    /// The phase with its data.
    enum Machine {
        /// The Noise handshake: waiting for message 1, or for message 3 after XX's message 2.
        case handshaking(ServerHandshaking)
        /// The handshake is done: from the initial request to the end (closed included, so what
        /// is left to send still drains and the session's facts stay readable).
        case transport(TransportBox<ServerTransport>)
        /// Ended before the handshake finished; `unsent`: XX's message 2 if not drained yet.
        case closedInHandshake(unsent: [UInt8])
        /// Handed off relay-free: the keys are gone, the facts the shell reports remain.
        case handedOff(ServerHandoffRecord)
        /// Only while a phase's data is taken out to be changed in place (no copy of its buffers).
        case modifying
    }

    var machine: Machine
    public let configuration: SessionConfiguration
    public let serverSessionID: String
    public let peerAddress: String

    public init(staticKey: KeyPair, peerAddress: String, configuration: SessionConfiguration = SessionConfiguration(),
                allowFirstContact: Bool = true, random: any RandomSource = SystemRandomSource(), ephemeral: KeyPair? = nil) {
        self.configuration = configuration
        self.peerAddress = peerAddress
        let responder = ResponderHandshake(staticKey: staticKey, allowFirstContact: allowFirstContact, random: random, ephemeral: ephemeral)
        machine = .handshaking(ServerHandshaking(responder: responder))
        serverSessionID = "s-" + Base64URL.encode(random.bytes(12))
    }

    // MARK: - Facts

    public var state: State {
        switch machine {
        case .handshaking(let h): h.awaitingMessage3 ? .awaitingMessage3 : .awaitingMessage1
        case .transport(let box): box.value.state
        case .closedInHandshake, .handedOff: .closed
        case .modifying: preconditionFailure("the state is read while it is being changed")
        }
    }

    /// The transport's box, to read a fact through it without copying the transport.
    private var transport: TransportBox<ServerTransport>? {
        if case .transport(let box) = machine { return box }
        return nil
    }

    private var handedOff: ServerHandoffRecord? {
        if case .handedOff(let r) = machine { return r }
        return nil
    }

    /// True while a login waits for `completeAuthentication`.
    public var isAwaitingAuthentication: Bool { transport?.value.pendingLogin != nil }
    public var clientSessionID: String? { transport?.value.clientSessionID ?? handedOff?.clientSessionID }
    public var identity: Identity? { transport?.value.identity ?? handedOff?.identity }
    public var authorizationTokenID: TokenProof.TokenID? { transport?.value.authorizationTokenID ?? handedOff?.authorizationTokenID }
    /// The menu last sent; indices in requests refer to it.
    public var menu: ApplicationMenu? { transport?.value.menu ?? handedOff?.menu }
    /// Which grant opened each local stream.
    public var streamGrants: [UInt32: ApplicationGrant] { transport?.value.streamGrants ?? [:] }
    public var earlyDataAccepted: Bool { transport?.value.earlyDataAccepted ?? handedOff?.earlyDataAccepted ?? false }
    /// Message 1 was IK or NK under the server's key and passed the replay rule (§3.6): the client
    /// knows the key and this is no replay. False for XX, and before the handshake is done.
    public var freshInitiation: Bool { transport?.value.freshInitiation ?? false }
    /// The stream of a dedicated connection: begun in the `initial_request` (by token or by name),
    /// not by OPEN on a menu connection. Only such a stream can be handed off relay-free.
    public var dedicatedStream: UInt32? { transport?.value.dedicatedStream ?? handedOff?.dedicatedStream }
    /// The code of the client's CLOSE frame, once it sent one (`.closed` then reports `closed_by_peer`).
    public var peerCloseCode: USPError.Code? { transport?.value.peerCloseCode }
    /// The handshake result once it is finished (its transport keys are the initial ones).
    public var handshake: HandshakeResult? { transport?.value.handshake }
    public var openStreamCount: Int { transport?.value.link.streams.count ?? 0 }

    // MARK: - Changing a phase in place

    /// Runs `body` on the transport, taken out of the machine meanwhile so that its buffers are
    /// changed in place. nil when the handshake is not done or the session was handed off.
    private mutating func withTransport<R>(_ body: (inout ServerTransport) throws(USPError) -> R) throws(USPError) -> R? {
        guard case .transport(var box) = machine else { return nil }
        machine = .modifying
        defer { machine = .transport(box) }
        if !isKnownUniquelyReferenced(&box) { box = TransportBox(box.value) }
        return try body(&box.value)
    }

    // MARK: - Input

    /// Feeds bytes received from the client.
    public mutating func receive(_ bytes: some Collection<UInt8>, now: Timestamp, delegate: some ServerSessionDelegate,
                                 into actions: inout ServerActions) {
        let copy = Array(bytes)
        copy.withUnsafeBytes { receive($0, now: now, delegate: delegate, into: &actions) }
    }

    public mutating func receive(_ bytes: UnsafeRawBufferPointer, now: Timestamp, delegate: some ServerSessionDelegate,
                                 into actions: inout ServerActions) {
        switch machine {
        case .handshaking(var handshaking):
            machine = .modifying
            let progress: ServerHandshaking.Progress
            do throws(USPError) {
                progress = try handshaking.consume(bytes, now: now, configuration: configuration, delegate: delegate)
            } catch {
                machine = .closedInHandshake(unsent: handshaking.unsent)
                actions.append(.closed(error))
                return
            }
            guard case .finished(let done) = progress else {
                machine = .handshaking(handshaking)
                return
            }
            var t: ServerTransport
            do throws(USPError) {
                t = try ServerTransport(done, handshakeBytes: handshaking.unsent, configuration: configuration,
                                        serverSessionID: serverSessionID, peerAddress: peerAddress)
            } catch {
                // The client's hello asks for what this server cannot do: nothing is sent.
                machine = .closedInHandshake(unsent: handshaking.unsent)
                actions.append(.closed(error))
                return
            }
            t.start(done, now: now, delegate: delegate, into: &actions)
            machine = .transport(TransportBox(t))
        case .transport:
            _ = try? withTransport { (t) throws(USPError) in t.receive(bytes, now: now, delegate: delegate, into: &actions) }
        case .closedInHandshake, .handedOff:
            return
        case .modifying:
            preconditionFailure("receive is not re-entrant")
        }
    }

    /// The client closed its side of the TCP connection.
    public mutating func endOfInput(into actions: inout ServerActions) {
        switch machine {
        case .handshaking(let h):
            machine = .closedInHandshake(unsent: h.unsent)
            actions.append(.closed(USPError(.unexpectedEOF, "client closed the connection during the handshake")))
        case .transport:
            _ = try? withTransport { (t) throws(USPError) in t.endOfInput(into: &actions) }
        case .closedInHandshake, .handedOff:
            return
        case .modifying:
            preconditionFailure("endOfInput is not re-entrant")
        }
    }

    /// The shell's handshake deadline passed: close without a word if the handshake is unfinished.
    public mutating func handshakeDeadlinePassed(into actions: inout ServerActions) {
        guard case .handshaking(let h) = machine else { return }
        machine = .closedInHandshake(unsent: h.unsent)
        actions.append(.closed(USPError(.handshakeTimeout, "handshake not finished in time (\(h.received) bytes received)")))
    }

    /// The outcome of the login announced by `.authenticationRequested` (computed by the shell
    /// with `delegate.authenticate`). Finishes that service_request, then handles the input that
    /// waited meanwhile.
    public mutating func completeAuthentication(_ outcome: Result<AuthorizationGrant, USPError>, now: Timestamp,
                                                delegate: some ServerSessionDelegate, into actions: inout ServerActions) {
        _ = try? withTransport { (t) throws(USPError) in
            t.completeAuthentication(outcome, now: now, delegate: delegate, into: &actions)
        }
    }

    // MARK: - The application side's calls

    /// Sends application bytes on `stream`, as much as the client's credit allows. Returns the
    /// number of bytes taken; the rest waits for `.streamWritable`.
    public mutating func write(stream: UInt32, _ data: UnsafeRawBufferPointer) throws(USPError) -> Int {
        try withTransport { (t) throws(USPError) in try t.write(stream: stream, data) } ?? 0
    }

    /// How many bytes a `write` on `stream` would take now (the client's credit, and room under
    /// shaping): a datagram application writes a whole datagram or none.
    public func sendableBytes(stream: UInt32) -> Int {
        guard case .transport(let box) = machine else { return 0 }
        return box.value.link.sendableBytes(stream: stream)
    }

    /// The application took `count` bytes of `stream`: returns credit to the client when due.
    public mutating func consumed(stream: UInt32, count: Int) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in try t.consumed(stream: stream, count: count) }
    }

    /// The application finished writing `stream` (half-close).
    public mutating func finish(stream: UInt32, into actions: inout ServerActions) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in try t.finish(stream: stream, into: &actions) }
    }

    /// Aborts `stream` with `code`.
    public mutating func reset(stream: UInt32, code: USPError.Code, into actions: inout ServerActions) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in try t.reset(stream: stream, code: code, into: &actions) }
    }

    /// Ends every stream opened under these tokens (revocation from elsewhere in the server).
    public mutating func revoke(tokenIDs: Set<TokenProof.TokenID>, code: USPError.Code = .tokenRevoked,
                                into actions: inout ServerActions) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in try t.revoke(tokenIDs: tokenIDs, code: code, into: &actions) }
    }

    /// Closes the session with `code` (graceful: `.ok` or `.shuttingDown`). Before the handshake
    /// finishes nothing is sent. Not during a hand-off: its outcome decides (after `handoffFailed`
    /// the session can be closed).
    public mutating func close(code: USPError.Code = .ok, into actions: inout ServerActions) {
        switch machine {
        case .handshaking(let h):
            machine = .closedInHandshake(unsent: h.unsent)
            actions.append(.closed(code == .ok ? nil : USPError(code, "server closed the session")))
        case .transport:
            _ = try? withTransport { (t) throws(USPError) in t.close(code: code, into: &actions) }
        case .closedInHandshake, .handedOff:
            return
        case .modifying:
            preconditionFailure("close is not re-entrant")
        }
    }

    // MARK: - Traffic shaping (docs/PROTOCOL.md §4.1)

    /// Starts shaping this session's records with `profile` and tells the client to do the same
    /// (a SHAPE frame). The shell must then call `tick` every `profile.tickMilliseconds`.
    public mutating func startShaping(_ profile: ShapingProfile) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in try t.link.startShaping(profile, announce: true) }
    }

    /// Stops shaping (SHAPE 0, 0): what waits goes out now. Streams that waited for room are
    /// told they may write (`.streamWritable`).
    public mutating func stopShaping(into actions: inout ServerActions) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in
            for stream in try t.link.stopShaping(announce: true) { actions.append(.streamWritable(stream: stream)) }
        }
    }

    /// One shaping tick: exactly one record's worth of bytes becomes ready to drain.
    public mutating func tick(into actions: inout ServerActions) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in
            for stream in try t.link.tick() { actions.append(.streamWritable(stream: stream)) }
        }
    }

    /// The profile in force, if the session is shaped.
    public var shaping: ShapingProfile? {
        if case .transport(let box) = machine { return box.value.link.shaping?.profile }
        return nil
    }

    // MARK: - Relay-free hand-off (docs/PROTOCOL.md §14)

    /// Takes the snapshot of a dedicated connection's transport and stream for a relay-free hand-off
    /// and stops the session (`handingOff`) until the application acknowledges or fails.
    ///
    /// - Parameters:
    ///   - undeliveredData: the stream's bytes the shell holds, opened but not yet given to an
    ///     application (all of them: exactly the stream's `buffered` count).
    ///   - unreadInput: bytes read from the socket after the last `receive` (held by the shell).
    ///   - unwrittenOutput: bytes drained earlier but not yet written to the socket.
    /// Throws (and changes nothing) when the connection cannot be handed off: not a dedicated
    /// connection, another stream was ever opened, the stream is gone or the session is not
    /// established. The detail says which; the shell then relays as usual.
    public mutating func beginHandoff(undeliveredData: [UInt8], unreadInput: [UInt8] = [],
                                      unwrittenOutput: [UInt8] = []) throws(USPError) -> DedicatedStreamSnapshot {
        let snapshot = try withTransport { (t) throws(USPError) in
            try t.beginHandoff(undeliveredData: undeliveredData, unreadInput: unreadInput, unwrittenOutput: unwrittenOutput)
        }
        guard let snapshot else { throw USPError(.internalError, "the session is not established (\(state))") }
        return snapshot
    }

    /// The application took the connection over: the session ends here without a word to the
    /// client, and its keys are dropped (zeroed as their storage goes).
    public mutating func handoffAcknowledged(into actions: inout ServerActions) {
        guard case .transport(let box) = machine, box.value.state == .handingOff else {
            preconditionFailure("acknowledge only a hand-off under way")
        }
        machine = .handedOff(ServerHandoffRecord(box.value))
        actions.append(.closed(nil))
    }

    /// The hand-off did not happen: the session goes on where it stopped (what was pending to send
    /// is queued again).
    public mutating func handoffFailed() {
        _ = try? withTransport { (t) throws(USPError) in t.handoffFailed() }
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
        case .handshaking(var h):
            machine = .modifying
            defer { machine = .handshaking(h) }
            return h.drain(body)
        case .closedInHandshake(let unsent):
            machine = .closedInHandshake(unsent: [])
            return unsent.withUnsafeBytes(body)
        case .handedOff:
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
        case .handshaking(let h): h.unsent.count
        case .transport(let box): box.value.link.outboundByteCount
        case .closedInHandshake(let unsent): unsent.count
        case .handedOff: 0
        case .modifying: preconditionFailure("the outbound count is read while the state is being changed")
        }
    }

    // test hook: seals `plaintext` (frame bytes) as one record, unchecked, as a hostile peer would.
    mutating func _sendRawRecord(_ plaintext: [UInt8]) throws(USPError) {
        _ = try withTransport { (t) throws(USPError) in try t.link.sendRawRecord(plaintext) }
    }
}

/// What a session handed off relay-free still tells the shell: the facts of its requests. Its
/// keys and buffers are gone.
struct ServerHandoffRecord {
    let clientSessionID: String?
    let identity: Identity?
    let authorizationTokenID: TokenProof.TokenID?
    let menu: ApplicationMenu?
    let earlyDataAccepted: Bool
    let dedicatedStream: UInt32?

    init(_ t: ServerTransport) {
        clientSessionID = t.clientSessionID
        identity = t.identity
        authorizationTokenID = t.authorizationTokenID
        menu = t.menu
        earlyDataAccepted = t.earlyDataAccepted
        dedicatedStream = t.dedicatedStream
    }
}
