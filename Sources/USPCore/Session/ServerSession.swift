/// The server side of a USP connection, sans I/O: bytes in, bytes and events out.
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
/// Every peer-caused problem is a `USPError` with a code: before the handshake finishes the
/// server answers nothing at all (darkness to strangers); after it, a CLOSE frame carries the code.
/// Policy is asked of a `ServerSessionDelegate`. Time comes in as `now`; the core reads no clock.
public struct ServerSession {
    /// The phase of the session. Each case documents what it waits for.
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

    public private(set) var state: State = .awaitingMessage1
    public let configuration: SessionConfiguration
    public let serverSessionID: String
    public let peerAddress: String
    private var responder: ResponderHandshake
    private var handshakeBuffer: [UInt8] = []
    private var output = SessionOutput()
    /// The transport once the handshake is done (kept in `output`, which owns the outbound bytes).
    private var link: SessionLink? {
        get { output.link }
        _modify { yield &output.link }
        set { output.link = newValue }
    }
    private var earlyBinding: [UInt8] = []
    /// Sealed bytes taken into a hand-off snapshot, sent after all if the hand-off fails.
    private var handoffRequeue: [UInt8] = []
    private var processingEarlyData = false
    /// A service_request whose login the shell is checking (`.authenticationRequested`).
    private var pendingLogin: PendingLogin?
    /// The frames that followed it in its record, handled once the login is complete.
    private var deferredFrames: [UInt8] = []

    /// A service_request paused after its index 0 asked for a slow authentication.
    struct PendingLogin {
        let request: ServiceRequest
        let seenMenu: ApplicationMenu?
        var reply: ServiceReply
        let requestIdentity: Identity?
        let requestAuthorization: TokenProof.TokenID?
        let tokenProblem: USPError.Code?
        let requestContext: SessionContext
    }

    /// True while a login waits for `completeAuthentication`.
    public var isAwaitingAuthentication: Bool { pendingLogin != nil }
    private let random: any RandomSource

    public private(set) var clientSessionID: String?
    public private(set) var identity: Identity?
    public private(set) var authorizationTokenID: TokenProof.TokenID?
    /// The menu last sent; indices in requests refer to it.
    public private(set) var menu: ApplicationMenu?
    /// Which grant opened each local stream.
    public private(set) var streamGrants: [UInt32: ApplicationGrant] = [:]
    public private(set) var earlyDataAccepted = false
    /// The stream of a dedicated connection: begun in the `initial_request` (by token or by name),
    /// not by OPEN on a menu connection. Only such a stream can be handed off relay-free.
    public private(set) var dedicatedStream: UInt32?
    /// The code of the client's CLOSE frame, once it sent one (`.closed` then reports `closed_by_peer`).
    public private(set) var peerCloseCode: USPError.Code?

    public init(staticKey: KeyPair, peerAddress: String, configuration: SessionConfiguration = SessionConfiguration(),
                allowFirstContact: Bool = true, random: any RandomSource = SystemRandomSource(), ephemeral: KeyPair? = nil) {
        self.configuration = configuration
        self.peerAddress = peerAddress
        self.random = random
        responder = ResponderHandshake(staticKey: staticKey, allowFirstContact: allowFirstContact, random: random, ephemeral: ephemeral)
        serverSessionID = "s-" + Base64URL.encode(random.bytes(12))
    }

    /// The handshake result once it is finished (its transport keys are the initial ones).
    public private(set) var handshake: HandshakeResult?
    public var openStreamCount: Int { link?.streams.count ?? 0 }

    // MARK: - Input

    /// Feeds bytes received from the client.
    public mutating func receive(_ bytes: some Collection<UInt8>, now: Timestamp, delegate: some ServerSessionDelegate,
                                 into actions: inout ServerActions) {
        let copy = Array(bytes)
        copy.withUnsafeBytes { receive($0, now: now, delegate: delegate, into: &actions) }
    }

    public mutating func receive(_ bytes: UnsafeRawBufferPointer, now: Timestamp, delegate: some ServerSessionDelegate,
                                 into actions: inout ServerActions) {
        guard state != .closed else { return }
        precondition(state != .handingOff, "the I/O shell holds input while a hand-off is under way")
        do throws(USPError) {
            try consume(bytes, now: now, delegate: delegate, into: &actions)
            try link?.flush()
        } catch {
            fail(error, into: &actions)
        }
    }

    /// The client closed its side of the TCP connection.
    public mutating func endOfInput(into actions: inout ServerActions) {
        // During a hand-off the application decides; the shell reads nothing meanwhile.
        guard state != .closed, state != .handingOff else { return }
        if let reader = link?.reader {
            do throws(USPError) { try reader.checkEndOfInput() } catch { fail(error, into: &actions); return }
        }
        let during = state == .awaitingMessage1 || state == .awaitingMessage3 ? "during the handshake" : "without CLOSE"
        fail(USPError(.unexpectedEOF, "client closed the connection \(during)"), into: &actions, sendClose: false)
    }

    /// The shell's handshake deadline passed: close without a word if the handshake is unfinished.
    public mutating func handshakeDeadlinePassed(into actions: inout ServerActions) {
        guard state == .awaitingMessage1 || state == .awaitingMessage3 else { return }
        fail(USPError(.handshakeTimeout, "handshake not finished in time (\(handshakeBuffer.count) bytes received)"), into: &actions)
    }

    private mutating func consume(_ bytes: UnsafeRawBufferPointer, now: Timestamp, delegate: some ServerSessionDelegate,
                                  into actions: inout ServerActions) throws(USPError) {
        switch state {
        case .awaitingMessage1:
            handshakeBuffer.append(contentsOf: bytes)
            guard handshakeBuffer.count >= HandshakeLayout.message1Length else { return }
            let rest = Array(handshakeBuffer[HandshakeLayout.message1Length...])
            try readMessage1(Array(handshakeBuffer[0..<HandshakeLayout.message1Length]), now: now, delegate: delegate, into: &actions)
            handshakeBuffer = []
            if !rest.isEmpty { try withBytes(rest) { (r) throws(USPError) in try consume(r, now: now, delegate: delegate, into: &actions) } }
        case .awaitingMessage3:
            handshakeBuffer.append(contentsOf: bytes)
            guard handshakeBuffer.count >= HandshakeLayout.message3Length else { return }
            let rest = Array(handshakeBuffer[HandshakeLayout.message3Length...])
            let result = try responder.readMessage3(Array(handshakeBuffer[0..<HandshakeLayout.message3Length]))
            handshakeBuffer = []
            handshake = result
            link = try SessionLink(result: result, configuration: configuration, role: .server)
            state = .awaitingInitialRequest
            actions.append(.handshakeCompleted(pattern: .xx, clientStatic: result.remoteStatic, earlyDataAccepted: false))
            if !rest.isEmpty { try withBytes(rest) { (r) throws(USPError) in try consume(r, now: now, delegate: delegate, into: &actions) } }
        case .awaitingInitialRequest, .established:
            link!.reader!.append(bytes)
            // While a login is being checked, input waits in the reader, in order.
            if pendingLogin == nil { try processRecords(now: now, delegate: delegate, into: &actions) }
        case .closed, .handingOff:
            return
        }
    }

    private mutating func readMessage1(_ message: [UInt8], now: Timestamp, delegate: some ServerSessionDelegate,
                                       into actions: inout ServerActions) throws(USPError) {
        let m1 = try responder.readMessage1(message)
        var flags: Hello.Flags = []
        let hasEarly = m1.earlyFrames.contains { $0 != 0 }
        if hasEarly, let hello = m1.clientHello,
           delegate.admitEarlyData(clientEphemeral: m1.clientEphemeral, timestamp: hello.timestamp, now: now) {
            flags.insert(.earlyDataAccepted)
            earlyDataAccepted = true
        }
        let (m2, result) = try responder.writeMessage2(hello: configuration.hello(now: now, flags: flags))
        output.handshakeBytes += m2
        guard let result else {
            state = .awaitingMessage3
            return
        }
        handshake = result
        link = try SessionLink(result: result, configuration: configuration, role: .server)
        state = .awaitingInitialRequest
        actions.append(.handshakeCompleted(pattern: m1.pattern, clientStatic: result.remoteStatic, earlyDataAccepted: earlyDataAccepted))
        if earlyDataAccepted {
            earlyBinding = m1.earlyBinding
            processingEarlyData = true
            defer { processingEarlyData = false }
            var frames = m1.earlyFrames
            let sawRekey = try withMutableBytes(&frames) { (f) throws(USPError) -> Bool in
                try handleRecord(UnsafeRawBufferPointer(f), now: now, delegate: delegate, into: &actions)
            }
            if sawRekey { throw USPError(.unexpectedMessage, "REKEY in early frames") }
        }
    }

    private mutating func processRecords(now: Timestamp, delegate: some ServerSessionDelegate,
                                         into actions: inout ServerActions) throws(USPError) {
        var reader = link!.reader.take()!
        defer { link?.reader = reader }
        while state != .closed, pendingLogin == nil {
            let outcome = try reader.nextRecord { (plaintext) throws(USPError) -> Bool in
                try handleRecord(UnsafeRawBufferPointer(plaintext), now: now, delegate: delegate, into: &actions)
            }
            guard let sawRekey = outcome else { break }
            if sawRekey { try reader.opener.rekey() }
        }
    }

    /// Dispatches every frame of one record's plaintext. Returns true if it carried REKEY.
    private mutating func handleRecord(_ plaintext: UnsafeRawBufferPointer, now: Timestamp, delegate: some ServerSessionDelegate,
                                       into actions: inout ServerActions) throws(USPError) -> Bool {
        var frames = FrameReader(plaintext)
        var sawRekey = false
        while state != .closed, let frame = try frames.next() {
            if case .rekey = frame {
                if processingEarlyData { throw USPError(.unexpectedMessage, "REKEY in early frames") }
                sawRekey = true
                continue
            }
            try handleFrame(frame, now: now, delegate: delegate, into: &actions)
            if pendingLogin != nil {
                // Paused for a slow login: keep the rest of this record for afterwards. A REKEY
                // among those frames takes effect when they are handled, before the next record.
                deferredFrames = Array(plaintext[frames.offset...])
                break
            }
        }
        return sawRekey
    }

    private mutating func handleFrame(_ frame: FrameView, now: Timestamp, delegate: some ServerSessionDelegate,
                                      into actions: inout ServerActions) throws(USPError) {
        if state == .awaitingInitialRequest {
            switch frame {
            case .message, .padding, .ping, .pong, .close, .rekey: break
            case .open, .accept, .reject, .data, .window, .fin, .reset:
                throw USPError(.unexpectedMessage, "\(frame.type.name) frame before the initial request")
            }
        }
        switch frame {
        case .message(let kind, let json):
            link!.streams.noteProgress()
            try handleMessage(kind: kind, json: json, now: now, delegate: delegate, into: &actions)
        case .open(let peerID, let body):
            try handleOpen(peerID: peerID, body: body, now: now, delegate: delegate, into: &actions)
        case .padding, .rekey, .pong, .accept, .reject, .data, .window, .fin, .reset, .ping, .close:
            switch try link!.applyClientFrame(frame) {
            case .none: return
            case .data(let stream, let data): actions.append(.streamData(stream: stream, data: []), carrying: data)
            case .writable(let stream): actions.append(.streamWritable(stream: stream))
            case .finished(let stream, let closed):
                actions.append(.streamFinished(stream: stream))
                if closed { streamGone(stream, .ok, into: &actions) }
            case .reset(let stream, let code): streamGone(stream, code, into: &actions)
            case .close(let c):
                state = .closed
                peerCloseCode = c
                actions.append(.closed(c == .ok ? nil : USPError(.closedByPeer, "client closed the session with \(c.name)")))
            }
        }
    }

    private mutating func streamGone(_ localID: UInt32, _ code: USPError.Code, into actions: inout ServerActions) {
        streamGrants[localID] = nil
        actions.append(.streamClosed(stream: localID, code: code))
    }

    // MARK: - Session messages

    private func context(now: Timestamp) -> SessionContext {
        let h = handshake?.handshakeHash ?? []
        return SessionContext(peerAddress: peerAddress, pattern: handshake?.pattern ?? .xx,
                              clientStatic: handshake?.remoteStatic,
                              channelBinding: processingEarlyData ? earlyBinding : h, isEarlyData: processingEarlyData,
                              serverSessionID: serverSessionID, clientSessionID: clientSessionID, identity: identity, now: now)
    }

    private mutating func handleMessage(kind: UInt8, json: UnsafeRawBufferPointer, now: Timestamp,
                                        delegate: some ServerSessionDelegate, into actions: inout ServerActions) throws(USPError) {
        var bytes = [kind]
        bytes.append(contentsOf: json)
        let message = try withBytes(bytes) { (b) throws(USPError) in try SessionMessage.decode(b) }
        switch message {
        case .initialRequest(let request):
            try handleInitialRequest(request, now: now, delegate: delegate, into: &actions)
        case .serviceRequest(let request):
            guard state == .established else {
                throw USPError(.unexpectedMessage, "service_request before the initial request")
            }
            try handleServiceRequest(request, now: now, delegate: delegate, into: &actions)
        case .menu, .serviceReply, .applicationSessionReply, .error:
            throw USPError(.unexpectedMessage, "\(message.kind.name) is a server message; a client may not send it")
        }
    }

    private mutating func handleInitialRequest(_ request: InitialRequest, now: Timestamp,
                                               delegate: some ServerSessionDelegate, into actions: inout ServerActions) throws(USPError) {
        if state == .established {
            // A later initial_request may only carry an application_session action (end or app-defined).
            guard let app = request.applicationSession, app.action != .begin || app.clientTCPStream == nil else {
                throw USPError(.unexpectedMessage, "a second initial_request without an application_session action")
            }
            guard request.clientSessionID == clientSessionID else {
                throw USPError(.sessionIDMismatch, "client_session_id changed from \(clientSessionID ?? "") to \(request.clientSessionID)")
            }
            try handleApplicationSession(app, initial: false, now: now, delegate: delegate, into: &actions)
            return
        }
        clientSessionID = request.clientSessionID
        if let app = request.applicationSession, app.application == nil {
            // The proposal's client step 5: this connection is for one application session;
            // the authorization token is ignored (it is only for menu access).
            try handleApplicationSession(app, initial: true, now: now, delegate: delegate, into: &actions)
            return
        }
        if let token = request.authorizationToken {
            switch validateAuthorization(token, now: now, delegate: delegate) {
            case .success(let (who, id)):
                identity = who
                authorizationTokenID = id
                actions.append(.authenticated(who, tokenID: id))
            case .failure(let error):
                // "If authorization_token is invalid: terminate the session with an error."
                try link!.send(.error(SessionErrorMessage(WireError(error.code))))
                throw error
            }
        }
        if let app = request.applicationSession {
            // Begin by name: the authorization token (checked above) says whose menu the name is on.
            try handleApplicationSession(app, initial: true, now: now, delegate: delegate, into: &actions)
            return
        }
        try sendMenu(now: now, delegate: delegate)
        state = .established
    }

    /// A begin by name: the application named on the caller's menu, its request body checked,
    /// an application token issued by policy as for a `service_request`, and presented here on
    /// the caller's behalf (bound to this channel), so the begin goes on like any other.
    private mutating func presentationForBeginByName(_ app: ApplicationSessionRequest, now: Timestamp,
                                                     delegate: some ServerSessionDelegate) -> Result<(presentation: String, tokenID: TokenProof.TokenID), USPError> {
        guard let name = app.application else { return .failure(USPError(.malformedMessage, "no application named")) }
        var ctx = context(now: now)
        ctx.issuingForBeginByName = true
        let offers = (menu ?? delegate.menu(for: identity, context: ctx)).applications
        guard let (index, entry) = offers.first(where: { $0.value.name == name }) else {
            // Before login the answer does not tell a hidden application from a missing one.
            return .failure(identity == nil
                ? USPError(.authorizationMissing, "\(name) is not on the menu of a caller who has not logged in")
                : USPError(.unknownApplication, "\(name) is not on the menu of \(identity!.name)"))
        }
        let body = app.request ?? [:]
        if let problem = RequestBodyValidator.validate(body, against: entry.expectedRequestBody) {
            return .failure(problem)
        }
        switch delegate.issueApplicationToken(index: index, entry: entry, request: body,
                                              authorizationTokenID: authorizationTokenID, context: ctx) {
        case .success(let secret):
            do {
                return .success((try TokenProof.present(secret: secret, handshakeHash: ctx.channelBinding),
                                 try TokenProof.tokenID(secret: secret)))
            } catch {
                return .failure(USPError(.internalError, "policy issued an unusable token: \(error.detail)"))
            }
        case .failure(let error):
            return .failure(error)
        }
    }

    private func validateAuthorization(_ token: String, now: Timestamp, delegate: some ServerSessionDelegate)
        -> Result<(Identity, TokenProof.TokenID), USPError> {
        let presentation: TokenProof.Presentation
        do { presentation = try TokenProof.parse(token) } catch {
            return .failure(USPError(.authorizationInvalid, error.detail))
        }
        return delegate.validateAuthorizationToken(presentation, context: context(now: now))
    }

    private mutating func sendMenu(now: Timestamp, delegate: some ServerSessionDelegate) throws(USPError) {
        var m = delegate.menu(for: identity, context: context(now: now))
        m.serverSessionID = serverSessionID
        menu = m
        try link!.send(.menu(m))
    }

    private mutating func handleServiceRequest(_ request: ServiceRequest, now: Timestamp,
                                               delegate: some ServerSessionDelegate, into actions: inout ServerActions) throws(USPError) {
        guard request.clientSessionID == clientSessionID else {
            throw USPError(.sessionIDMismatch, "service_request client_session_id \(request.clientSessionID) is not this session's")
        }
        let seenMenu = menu
        var reply = ServiceReply()
        var requestIdentity = identity
        var requestAuthorization = authorizationTokenID
        var tokenProblem: USPError.Code? = identity == nil ? .authorizationMissing : nil
        if let token = request.authorizationToken {
            switch validateAuthorization(token, now: now, delegate: delegate) {
            case .success(let (who, id)):
                requestIdentity = who
                requestAuthorization = id
                tokenProblem = nil
            case .failure(let error):
                tokenProblem = error.code == .authorizationMissing ? .authorizationMissing : .authorizationInvalid
                if identity == nil { requestIdentity = nil }
            }
        }
        var loggedIn = false
        switch request.authentication {
        case .credentials(let fields)?:
            if !processingEarlyData, delegate.authenticationIsSlow(fields: fields) {
                // The shell checks it off the I/O thread; the rest of this request waits.
                let ctx = context(now: now)
                pendingLogin = PendingLogin(request: request, seenMenu: seenMenu, reply: reply, requestIdentity: requestIdentity,
                                            requestAuthorization: requestAuthorization, tokenProblem: tokenProblem, requestContext: ctx)
                actions.append(.authenticationRequested(fields: fields, context: ctx))
                return
            }
            loggedIn = apply(delegate.authenticate(fields: fields, context: context(now: now)), to: &reply, into: &actions)
        case .invalidateTokens(let tokens)?:
            if requestIdentity == nil {
                reply.results[.authentication] = .error(WireError(tokenProblem ?? .authorizationMissing))
            } else {
                switch delegate.invalidateTokens(tokens, context: context(now: now)) {
                case .success(let ids):
                    reply.results[.authentication] = .invalidated(UInt32(ids.count))
                    endStreams(of: Set(ids), into: &actions)
                    actions.append(.tokensInvalidated(ids))
                case .failure(let error):
                    reply.results[.authentication] = .error(WireError(error.code))
                }
            }
        case nil:
            break
        }
        try answerApplications(request, seenMenu: seenMenu, reply: reply, loggedIn: loggedIn, requestIdentity: requestIdentity,
                               requestAuthorization: requestAuthorization, tokenProblem: tokenProblem, now: now,
                               isEarlyData: processingEarlyData, delegate: delegate)
    }

    /// A login's outcome into the reply's index 0; true if the session is now logged in.
    private mutating func apply(_ outcome: Result<AuthorizationGrant, USPError>, to reply: inout ServiceReply,
                                into actions: inout ServerActions) -> Bool {
        switch outcome {
        case .success(let grant):
            identity = grant.identity
            authorizationTokenID = grant.tokenID
            reply.results[.authentication] = .token(grant.token)
            actions.append(.authenticated(grant.identity, tokenID: grant.tokenID))
            return true
        case .failure(let error):
            reply.results[.authentication] = .error(WireError(error.code))
            return false
        }
    }

    /// The outcome of the login announced by `.authenticationRequested` (computed by the shell
    /// with `delegate.authenticate`). Finishes that service_request, then handles the input that
    /// waited meanwhile.
    public mutating func completeAuthentication(_ outcome: Result<AuthorizationGrant, USPError>, now: Timestamp,
                                                delegate: some ServerSessionDelegate, into actions: inout ServerActions) {
        guard state != .closed, let pending = pendingLogin else { return }
        pendingLogin = nil
        do throws(USPError) {
            var reply = pending.reply
            let loggedIn = apply(outcome, to: &reply, into: &actions)
            try answerApplications(pending.request, seenMenu: pending.seenMenu, reply: reply, loggedIn: loggedIn,
                                   requestIdentity: pending.requestIdentity, requestAuthorization: pending.requestAuthorization,
                                   tokenProblem: pending.tokenProblem, now: now, isEarlyData: false, delegate: delegate)
            if !deferredFrames.isEmpty {
                var frames = deferredFrames
                deferredFrames = []
                let sawRekey = try withMutableBytes(&frames) { (f) throws(USPError) -> Bool in
                    try handleRecord(UnsafeRawBufferPointer(f), now: now, delegate: delegate, into: &actions)
                }
                if sawRekey { try link!.reader!.opener.rekey() }
            }
            if pendingLogin == nil, state != .closed { try processRecords(now: now, delegate: delegate, into: &actions) }
            try link?.flush()
        } catch {
            fail(error, into: &actions)
        }
    }

    /// Step 4 and 5 of a service_request (docs/PROTOCOL.md §6.3): every index but 0, then the
    /// reply, then a new menu after a login.
    private mutating func answerApplications(_ request: ServiceRequest, seenMenu: ApplicationMenu?, reply: ServiceReply, loggedIn: Bool,
                                             requestIdentity: Identity?, requestAuthorization: TokenProof.TokenID?,
                                             tokenProblem: USPError.Code?, now: Timestamp, isEarlyData: Bool,
                                             delegate: some ServerSessionDelegate) throws(USPError) {
        var reply = reply
        // Indices refer to the menu the client saw before this message.
        let requestContext = SessionContext(peerAddress: peerAddress, pattern: handshake!.pattern, clientStatic: handshake!.remoteStatic,
                                            channelBinding: isEarlyData ? earlyBinding : handshake!.handshakeHash,
                                            isEarlyData: isEarlyData,
                                            serverSessionID: serverSessionID, clientSessionID: clientSessionID,
                                            identity: requestIdentity, now: now)
        let visible = (requestIdentity == identity ? seenMenu : delegate.menu(for: requestIdentity, context: requestContext))?.applications ?? [:]
        for (index, body) in request.services.sorted(by: { $0.key < $1.key }) {
            guard let entry = visible[index] else {
                // Before login, an index that is not on the caller's menu answers as the proposal's
                // "authorization token missing/invalid", whether or not it exists: nothing leaks.
                reply.results[index] = .error(WireError(requestIdentity == nil ? (tokenProblem ?? .authorizationMissing) : .unknownIndex))
                continue
            }
            if let problem = RequestBodyValidator.validate(body, against: entry.expectedRequestBody) {
                reply.results[index] = .error(WireError(problem.code, problem.detail))
                continue
            }
            switch delegate.issueApplicationToken(index: index, entry: entry, request: body,
                                                  authorizationTokenID: requestAuthorization, context: requestContext) {
            case .success(let token): reply.results[index] = .token(token)
            case .failure(let error): reply.results[index] = .error(WireError(error.code))
            }
        }
        try link!.send(.serviceReply(reply))
        if loggedIn { try sendMenu(now: now, delegate: delegate) }
    }

    // MARK: - Application sessions and streams

    private mutating func handleApplicationSession(_ app: ApplicationSessionRequest, initial: Bool, now: Timestamp,
                                                   delegate: some ServerSessionDelegate, into actions: inout ServerActions) throws(USPError) {
        var token = app.token ?? ""
        var issuedHere: TokenProof.TokenID?
        if app.application != nil {
            switch presentationForBeginByName(app, now: now, delegate: delegate) {
            case .success(let issued):
                token = issued.presentation
                issuedHere = issued.tokenID
            case .failure(let error):
                try replyApplicationSession(.error(WireError(error.code, error.code == .invalidRequestBody ? error.detail : nil)))
                if initial { throw error }
                return
            }
        }
        let grant: ApplicationGrant
        switch validateApplication(token, now: now, delegate: delegate) {
        case .success(let g): grant = g
        case .failure(let error):
            try replyApplicationSession(.error(WireError(error.code)))
            if initial { throw error }
            return
        }
        switch app.action {
        case .begin:
            guard let peerID = app.clientTCPStream else {
                guard initial else {
                    // On an established session streams open with OPEN; refuse this request only.
                    try replyApplicationSession(.error(WireError(.unexpectedMessage, "begin on an established session: use an OPEN frame")))
                    return
                }
                throw USPError(.malformedMessage, "application_session begin without client_tcp_stream")
            }
            switch try link!.streams.peerOpened(peerID) {
            case .refuse(let code):
                try replyApplicationSession(.error(WireError(code)))
                if initial { throw USPError(code, "stream limit reached") }
            case .pending:
                guard let localID = link!.streams.accept(peerID) else { return }
                streamGrants[localID] = grant
                if initial { dedicatedStream = localID }
                state = .established
                var began = ApplicationSessionResult.began(clientTCPStream: peerID, serverTCPStream: localID)
                // A begin by name learns the ID of the token issued for it, for its own records.
                if let id = issuedHere { began.result = [MessageKeys.tokenID: .string(id.description)] }
                try replyApplicationSession(.session(began))
                actions.append(.streamOpened(stream: localID, grant: grant))
            }
        case .end:
            endStreams(of: [grant.tokenID], code: .ok, into: &actions)
            state = .established
            try replyApplicationSession(.session(ApplicationSessionResult(action: .end)))
        default:
            switch delegate.performAction(app.action.rawValue, grant: grant, parameters: app.parameters, context: context(now: now)) {
            case .success(let value):
                var result = ApplicationSessionResult(action: app.action)
                if case .object(let o) = value { result.result = o } else { result.result = ["value": value] }
                state = .established
                try replyApplicationSession(.session(result))
            case .failure(let error):
                try replyApplicationSession(.error(WireError(error.code)))
                if initial { throw error }
            }
        }
    }

    private mutating func replyApplicationSession(_ outcome: ApplicationSessionReply.Outcome) throws(USPError) {
        try link!.send(.applicationSessionReply(ApplicationSessionReply(serverSessionID: serverSessionID, outcome: outcome)))
    }

    private func validateApplication(_ token: String, now: Timestamp, delegate: some ServerSessionDelegate) -> Result<ApplicationGrant, USPError> {
        let presentation: TokenProof.Presentation
        do { presentation = try TokenProof.parse(token) } catch { return .failure(error) }
        return delegate.validateApplicationToken(presentation, context: context(now: now))
    }

    private mutating func handleOpen(peerID: UInt32, body: UnsafeRawBufferPointer, now: Timestamp,
                                     delegate: some ServerSessionDelegate, into actions: inout ServerActions) throws(USPError) {
        let request = try ApplicationSessionRequest.decodeOpenBody(body)
        switch try link!.streams.peerOpened(peerID) {
        case .refuse(let code):
            try link!.send(.reject(opener: peerID, code: code.wireValue, message: code.name))
            return
        case .pending:
            break
        }
        guard request.action == .begin else {
            link!.streams.reject(peerID)
            try link!.streams.noteControlFrame()
            try link!.send(.reject(opener: peerID, code: USPError.Code.unknownAction.wireValue, message: "OPEN carries action begin"))
            return
        }
        var token = request.token ?? ""
        if request.application != nil {
            switch presentationForBeginByName(request, now: now, delegate: delegate) {
            case .success(let issued): token = issued.presentation
            case .failure(let error):
                link!.streams.reject(peerID)
                try link!.streams.noteControlFrame()
                try link!.send(.reject(opener: peerID, code: error.code.wireValue, message: WireError.humanMessage(for: error.code)))
                return
            }
        }
        switch validateApplication(token, now: now, delegate: delegate) {
        case .success(let grant):
            guard let localID = link!.streams.accept(peerID) else { return }
            streamGrants[localID] = grant
            try link!.send(.accept(opener: peerID, acceptor: localID))
            actions.append(.streamOpened(stream: localID, grant: grant))
        case .failure(let error):
            link!.streams.reject(peerID)
            try link!.streams.noteControlFrame()
            try link!.send(.reject(opener: peerID, code: error.code.wireValue, message: WireError.humanMessage(for: error.code)))
        }
    }

    /// Resets every stream opened under these tokens (or under application tokens issued from them):
    /// with `token_revoked` on invalidation, with `ok` when the client ends its application session.
    private mutating func endStreams(of tokenIDs: Set<TokenProof.TokenID>, code: USPError.Code = .tokenRevoked,
                                     into actions: inout ServerActions) {
        let doomed = streamGrants.filter { tokenIDs.contains($0.value.tokenID) || ($0.value.authorizationTokenID.map(tokenIDs.contains) ?? false) }
        for (localID, _) in doomed.sorted(by: { $0.key < $1.key }) {
            if link!.streams.reset(localID) {
                try? link!.send(.reset(stream: localID, code: code.wireValue))
            }
            streamGone(localID, code, into: &actions)
        }
    }

    // MARK: - Output and application-side calls

    /// Sends application bytes on `stream`, as much as the client's credit allows. Returns the
    /// number of bytes taken; the rest waits for `.streamWritable`.
    public mutating func write(stream: UInt32, _ data: UnsafeRawBufferPointer) throws(USPError) -> Int {
        guard state == .established else { return 0 }
        return try output.write(stream: stream, data)
    }

    /// The application took `count` bytes of `stream`: returns credit to the client when due.
    public mutating func consumed(stream: UInt32, count: Int) throws(USPError) {
        guard state == .established else { return }
        try output.consumed(stream: stream, count: count)
    }

    /// The application finished writing `stream` (half-close).
    public mutating func finish(stream: UInt32, into actions: inout ServerActions) throws(USPError) {
        guard state == .established else { return }
        if try output.finish(stream: stream) { streamGone(stream, .ok, into: &actions) }
    }

    /// Aborts `stream` with `code`.
    public mutating func reset(stream: UInt32, code: USPError.Code, into actions: inout ServerActions) throws(USPError) {
        guard state == .established else { return }
        if try output.reset(stream: stream, code: code) { streamGone(stream, code, into: &actions) }
    }

    /// Ends every stream opened under these tokens (revocation from elsewhere in the server).
    public mutating func revoke(tokenIDs: Set<TokenProof.TokenID>, into actions: inout ServerActions) throws(USPError) {
        guard link != nil, state == .established else { return }
        endStreams(of: tokenIDs, into: &actions)
        try link!.flush()
    }

    /// Closes the session with `code` (graceful: `.ok` or `.shuttingDown`). Not during a hand-off:
    /// its outcome decides (after `handoffFailed` the session can be closed).
    public mutating func close(code: USPError.Code = .ok, into actions: inout ServerActions) {
        guard state != .closed, state != .handingOff else { return }
        output.sendClose(code)
        state = .closed
        actions.append(.closed(code == .ok ? nil : USPError(code, "server closed the session")))
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
        guard state == .established, let link else {
            throw USPError(.internalError, "the session is not established (\(state))")
        }
        guard let stream = dedicatedStream else {
            throw USPError(.internalError, "not a dedicated connection: the stream was opened with OPEN on a menu connection")
        }
        guard link.streams.lastLocalID == stream, link.streams.count == 1, let live = link.streams.state(of: stream) else {
            throw USPError(.internalError, "the connection has had other streams than its dedicated one, or that stream is gone")
        }
        guard live.buffered == undeliveredData.count else {
            throw USPError(.internalError, "the shell holds \(undeliveredData.count) undelivered bytes, the stream \(live.buffered)")
        }
        let pending = output.drain { Array($0) }
        let snapshot = try link.snapshot(stream: stream, serverSessionID: serverSessionID, undeliveredData: undeliveredData,
                                         unreadInput: unreadInput, unwrittenOutput: unwrittenOutput + pending)
        handoffRequeue = pending
        state = .handingOff
        return snapshot
    }

    /// The application took the connection over: the session ends here without a word to the
    /// client, and its keys are dropped (zeroed as their storage goes).
    public mutating func handoffAcknowledged(into actions: inout ServerActions) {
        precondition(state == .handingOff, "acknowledge only a hand-off under way")
        state = .closed
        output = SessionOutput()
        handshake = nil
        handoffRequeue = []
        if let stream = dedicatedStream { streamGrants[stream] = nil }
        actions.append(.closed(nil))
    }

    /// The hand-off did not happen: the session goes on where it stopped (what was pending to send
    /// is queued again).
    public mutating func handoffFailed() {
        precondition(state == .handingOff, "fail only a hand-off under way")
        state = .established
        if !handoffRequeue.isEmpty { link!.composer.requeue(handoffRequeue) }
        handoffRequeue = []
    }

    /// Hands the bytes to send to `body` and forgets them (their storage is kept for reuse).
    public mutating func drainOutbound<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { output.drain(body) }

    /// Frees buffer storage while nothing is pending (call when the connection goes idle).
    public mutating func releaseIdleStorage() { output.releaseIdleStorage() }

    /// Bytes waiting to be sent.
    public var outboundByteCount: Int { output.byteCount }

    // test hook: seals `plaintext` (frame bytes) as one record, unchecked, as a hostile peer would.
    mutating func _sendRawRecord(_ plaintext: [UInt8]) throws(USPError) { try output.sendRawRecord(plaintext) }

    private mutating func fail(_ error: USPError, into actions: inout ServerActions, sendClose: Bool = true) {
        // The client learns the code only; the detail stays in the server's log.
        if sendClose { output.sendClose(error.code) }
        state = .closed
        actions.append(.closed(error))
    }
}
