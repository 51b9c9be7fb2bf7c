/// The request service: the initial request, the menu, logins at index 0, token invalidation,
/// application tokens and begin by name (docs/PROTOCOL.md §6). Policy is the delegate's.
extension ServerTransport {
    // MARK: - Session messages

    func context(now: Timestamp) -> SessionContext {
        let h = handshake.handshakeHash
        return SessionContext(peerAddress: peerAddress, pattern: handshake.pattern,
                              clientStatic: handshake.remoteStatic,
                              channelBinding: processingEarlyData ? earlyBinding : h, isEarlyData: processingEarlyData,
                              serverSessionID: serverSessionID, clientSessionID: clientSessionID, identity: identity, now: now)
    }

    mutating func handleMessage(kind: UInt8, json: UnsafeRawBufferPointer, now: Timestamp,
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

    mutating func handleInitialRequest(_ request: InitialRequest, now: Timestamp,
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
                try link.send(.error(SessionErrorMessage(WireError(error.code))))
                throw error
            }
        }
        if let app = request.applicationSession {
            // Begin by name: the authorization token (checked above) says whose menu the name is on.
            try handleApplicationSession(app, initial: true, now: now, delegate: delegate, into: &actions)
            return
        }
        try sendMenu(now: now, delegate: delegate)
        phase = .established
    }

    /// A begin by name: the application named on the caller's menu, its request body checked, and
    /// an application token issued by policy for it and granted to this session at once (it never
    /// leaves the server), so the begin goes on like any other.
    mutating func grantForBeginByName(_ app: ApplicationSessionRequest, now: Timestamp,
                                      delegate: some ServerSessionDelegate) -> Result<ApplicationGrant, USPError> {
        guard let name = app.application else { return .failure(USPError(.malformedMessage, "no application named")) }
        let ctx = context(now: now)
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
        return delegate.grantApplicationByName(index: index, entry: entry, request: body,
                                               authorizationTokenID: authorizationTokenID, context: ctx)
    }

    func validateAuthorization(_ token: String, now: Timestamp, delegate: some ServerSessionDelegate)
        -> Result<(Identity, TokenProof.TokenID), USPError> {
        let presentation: TokenProof.Presentation
        do { presentation = try TokenProof.parse(token) } catch {
            return .failure(USPError(.authorizationInvalid, error.detail))
        }
        return delegate.validateAuthorizationToken(presentation, context: context(now: now))
    }

    mutating func sendMenu(now: Timestamp, delegate: some ServerSessionDelegate) throws(USPError) {
        var m = delegate.menu(for: identity, context: context(now: now))
        m.serverSessionID = serverSessionID
        menu = m
        try link.send(.menu(m))
    }

    mutating func handleServiceRequest(_ request: ServiceRequest, now: Timestamp,
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
                // Every reason a token is bad is `authorization_token_invalid` here; a server that
                // could not check it (`store_unavailable`) says so, so that the client keeps a login
                // that may well be good.
                switch error.code {
                case .authorizationMissing, .storeUnavailable: tokenProblem = error.code
                default: tokenProblem = .authorizationInvalid
                }
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
    mutating func apply(_ outcome: Result<AuthorizationGrant, USPError>, to reply: inout ServiceReply,
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
    mutating func completeAuthentication(_ outcome: Result<AuthorizationGrant, USPError>, now: Timestamp,
                                                delegate: some ServerSessionDelegate, into actions: inout ServerActions) {
        guard state != .closed, let pending = pendingLogin else { return }
        pendingLogin = nil
        do throws(USPError) {
            var reply = pending.reply
            let loggedIn = apply(outcome, to: &reply, into: &actions)
            try answerApplications(pending.request, seenMenu: pending.seenMenu, reply: reply, loggedIn: loggedIn,
                                   requestIdentity: pending.requestIdentity, requestAuthorization: pending.requestAuthorization,
                                   tokenProblem: pending.tokenProblem, now: now, isEarlyData: false, delegate: delegate)
            if !pending.deferredFrames.isEmpty {
                var frames = pending.deferredFrames
                let sawRekey = try withMutableBytes(&frames) { (f) throws(USPError) -> Bool in
                    try handleRecord(UnsafeRawBufferPointer(f), now: now, delegate: delegate, into: &actions)
                }
                if sawRekey { try link.withReaderLent { (reader) throws(USPError) in try reader.opener.rekey() } }
            }
            if pendingLogin == nil, state != .closed { try processRecords(now: now, delegate: delegate, into: &actions) }
            try link.flush()
        } catch {
            fail(error, into: &actions)
        }
    }

    /// Step 4 and 5 of a service_request (docs/PROTOCOL.md §6.3): every index but 0, then the
    /// reply, then a new menu after a login.
    mutating func answerApplications(_ request: ServiceRequest, seenMenu: ApplicationMenu?, reply: ServiceReply, loggedIn: Bool,
                                             requestIdentity: Identity?, requestAuthorization: TokenProof.TokenID?,
                                             tokenProblem: USPError.Code?, now: Timestamp, isEarlyData: Bool,
                                             delegate: some ServerSessionDelegate) throws(USPError) {
        var reply = reply
        // Indices refer to the menu the client saw before this message.
        let requestContext = SessionContext(peerAddress: peerAddress, pattern: handshake.pattern, clientStatic: handshake.remoteStatic,
                                            channelBinding: isEarlyData ? earlyBinding : handshake.handshakeHash,
                                            isEarlyData: isEarlyData,
                                            serverSessionID: serverSessionID, clientSessionID: clientSessionID,
                                            identity: requestIdentity, now: now)
        let visible = (requestIdentity == identity ? seenMenu : delegate.menu(for: requestIdentity, context: requestContext))?.applications ?? [:]
        for (index, body) in request.services.sorted(by: { $0.key < $1.key }) {
            if request.clientIP != nil, requestIdentity == nil || tokenProblem != nil {
                // Brokering is offered only after authentication, and only as the identity the
                // client meant: a stranger's request, or one whose authorization_token failed
                // (it would otherwise run as the session's login), brokers nothing.
                reply.results[index] = .error(WireError(tokenProblem ?? .authorizationMissing))
                continue
            }
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
            if let clientIP = request.clientIP {
                switch delegate.issueBrokeredApplicationToken(index: index, entry: entry, request: body, clientIP: clientIP,
                                                              authorizationTokenID: requestAuthorization, context: requestContext) {
                case .success(let token): reply.results[index] = .token(token)
                case .failure(let error):
                    // A broker is told which of its own limits refused it.
                    let ownLimit = switch error.code {
                    case .brokerNotAllowed, .brokerAddressNotAllowed, .rateLimited: !error.detail.isEmpty
                    default: false
                    }
                    reply.results[index] = .error(ownLimit ? WireError(error.code, error.detail) : WireError(error.code))
                }
                continue
            }
            switch delegate.issueApplicationToken(index: index, entry: entry, request: body,
                                                  authorizationTokenID: requestAuthorization, context: requestContext) {
            case .success(let token): reply.results[index] = .token(token)
            case .failure(let error): reply.results[index] = .error(WireError(error.code))
            }
        }
        try link.send(.serviceReply(reply))
        if loggedIn { try sendMenu(now: now, delegate: delegate) }
    }
}
