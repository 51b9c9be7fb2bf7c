/// Application sessions and streams: begin on a dedicated connection, OPEN on a menu connection,
/// `end` and application-defined actions, revocation, and the application side's calls.
extension ServerTransport {
    // MARK: - Application sessions and streams

    mutating func handleApplicationSession(_ app: ApplicationSessionRequest, initial: Bool, now: Timestamp,
                                                   delegate: some ServerSessionDelegate, into actions: inout ServerActions) throws(USPError) {
        let byName = app.application != nil
        let granted = byName ? grantForBeginByName(app, now: now, delegate: delegate)
                             : validateApplication(app.token ?? "", now: now, delegate: delegate)
        let grant: ApplicationGrant
        switch granted {
        case .success(let g): grant = g
        case .failure(let error):
            try replyApplicationSession(.error(WireError(error.code, error.code == .invalidRequestBody ? error.detail : nil)))
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
            switch try link.streams.peerOpened(peerID) {
            case .refuse(let code):
                try replyApplicationSession(.error(WireError(code)))
                if initial { throw USPError(code, "stream limit reached") }
            case .pending:
                guard let localID = link.streams.accept(peerID) else { return }
                streamGrants[localID] = grant
                if initial { dedicatedStream = localID }
                phase = .established
                var began = ApplicationSessionResult.began(clientTCPStream: peerID, serverTCPStream: localID)
                // A begin by name learns the ID of the token issued for it, for its own records.
                if byName { began.result = [MessageKeys.tokenID: .string(grant.tokenID.description)] }
                try replyApplicationSession(.session(began))
                actions.append(.streamOpened(stream: localID, grant: grant))
            }
        case .end:
            endStreams(of: [grant.tokenID], code: .ok, into: &actions)
            phase = .established
            try replyApplicationSession(.session(ApplicationSessionResult(action: .end)))
        default:
            switch delegate.performAction(app.action.rawValue, grant: grant, parameters: app.parameters, context: context(now: now)) {
            case .success(let value):
                var result = ApplicationSessionResult(action: app.action)
                if case .object(let o) = value { result.result = o } else { result.result = ["value": value] }
                phase = .established
                try replyApplicationSession(.session(result))
            case .failure(let error):
                try replyApplicationSession(.error(WireError(error.code)))
                if initial { throw error }
            }
        }
    }

    mutating func replyApplicationSession(_ outcome: ApplicationSessionReply.Outcome) throws(USPError) {
        try link.send(.applicationSessionReply(ApplicationSessionReply(serverSessionID: serverSessionID, outcome: outcome)))
    }

    func validateApplication(_ token: String, now: Timestamp, delegate: some ServerSessionDelegate) -> Result<ApplicationGrant, USPError> {
        let presentation: TokenProof.Presentation
        do { presentation = try TokenProof.parse(token) } catch { return .failure(error) }
        return delegate.validateApplicationToken(presentation, context: context(now: now))
    }

    mutating func handleOpen(peerID: UInt32, body: UnsafeRawBufferPointer, now: Timestamp,
                                     delegate: some ServerSessionDelegate, into actions: inout ServerActions) throws(USPError) {
        let request = try ApplicationSessionRequest.decodeOpenBody(body)
        switch try link.streams.peerOpened(peerID) {
        case .refuse(let code):
            try link.send(.reject(opener: peerID, code: code.wireValue, message: code.name))
            return
        case .pending:
            break
        }
        guard request.action == .begin else {
            link.streams.reject(peerID)
            try link.streams.noteControlFrame()
            try link.send(.reject(opener: peerID, code: USPError.Code.unknownAction.wireValue, message: "OPEN carries action begin"))
            return
        }
        let granted = request.application != nil ? grantForBeginByName(request, now: now, delegate: delegate)
                                                  : validateApplication(request.token ?? "", now: now, delegate: delegate)
        switch granted {
        case .success(let grant):
            guard let localID = link.streams.accept(peerID) else { return }
            streamGrants[localID] = grant
            try link.send(.accept(opener: peerID, acceptor: localID))
            actions.append(.streamOpened(stream: localID, grant: grant))
        case .failure(let error):
            link.streams.reject(peerID)
            try link.streams.noteControlFrame()
            try link.send(.reject(opener: peerID, code: error.code.wireValue, message: WireError.humanMessage(for: error.code)))
        }
    }

    /// Resets every stream opened under these tokens (or under application tokens issued from them):
    /// with `token_revoked` on invalidation, with `ok` when the client ends its application session.
    mutating func endStreams(of tokenIDs: Set<TokenProof.TokenID>, code: USPError.Code = .tokenRevoked,
                                     into actions: inout ServerActions) {
        let doomed = streamGrants.filter { tokenIDs.contains($0.value.tokenID) || ($0.value.authorizationTokenID.map(tokenIDs.contains) ?? false) }
        for (localID, _) in doomed.sorted(by: { $0.key < $1.key }) {
            if link.streams.reset(localID) {
                try? link.send(.reset(stream: localID, code: code.wireValue))
            }
            streamGone(localID, code, into: &actions)
        }
    }

    // MARK: - Output and application-side calls

    /// Sends application bytes on `stream`, as much as the client's credit allows. Returns the
    /// number of bytes taken; the rest waits for `.streamWritable`.
    mutating func write(stream: UInt32, _ data: UnsafeRawBufferPointer) throws(USPError) -> Int {
        guard state == .established else { return 0 }
        return try link.write(stream: stream, data)
    }

    /// The application took `count` bytes of `stream`: returns credit to the client when due.
    mutating func consumed(stream: UInt32, count: Int) throws(USPError) {
        guard state == .established else { return }
        try link.consumed(stream: stream, count: count)
    }

    /// The application finished writing `stream` (half-close).
    mutating func finish(stream: UInt32, into actions: inout ServerActions) throws(USPError) {
        guard state == .established else { return }
        if try link.finish(stream: stream) { streamGone(stream, .ok, into: &actions) }
    }

    /// Aborts `stream` with `code`.
    mutating func reset(stream: UInt32, code: USPError.Code, into actions: inout ServerActions) throws(USPError) {
        guard state == .established else { return }
        if try link.reset(stream: stream, code: code) { streamGone(stream, code, into: &actions) }
    }

    /// Ends every stream opened under these tokens (revocation from elsewhere in the server).
    mutating func revoke(tokenIDs: Set<TokenProof.TokenID>, code: USPError.Code = .tokenRevoked,
                         into actions: inout ServerActions) throws(USPError) {
        guard state == .established else { return }
        endStreams(of: tokenIDs, code: code, into: &actions)
        try link.flush()
    }

    /// Closes the session with `code` (graceful: `.ok` or `.shuttingDown`). Not during a hand-off:
    /// its outcome decides (after `handoffFailed` the session can be closed).
    mutating func close(code: USPError.Code = .ok, into actions: inout ServerActions) {
        guard state != .closed, state != .handingOff else { return }
        link.sendClose(code)
        phase = .closed
        actions.append(.closed(code == .ok ? nil : USPError(code, "server closed the session")))
    }
}
