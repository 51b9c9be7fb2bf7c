/// A server session once the handshake is done: the transport (`SessionLink`), the request
/// service's state, the streams' grants, and the phase from the initial request to the end. Its
/// extensions hold the request service (`+Requests`), the streams (`+Streams`) and the relay-free
/// hand-off (`+Handoff`); here are the record dispatch and the session's end.
struct ServerTransport {
    /// The phase, with what only it has.
    enum Phase {
        case awaitingInitialRequest
        case established
        /// `requeue`: sealed bytes taken into the snapshot, sent after all if the hand-off fails.
        case handingOff(requeue: [UInt8])
        case closed
    }

    /// A service_request paused after its index 0 asked for a slow authentication.
    struct PendingLogin {
        let request: ServiceRequest
        let seenMenu: ApplicationMenu?
        var reply: ServiceReply
        let requestIdentity: Identity?
        let requestAuthorization: TokenProof.TokenID?
        let tokenProblem: USPError.Code?
        let requestContext: SessionContext
        /// The frames that followed the request in its record, handled once the login is complete.
        var deferredFrames: [UInt8] = []
    }

    var phase: Phase = .awaitingInitialRequest
    var link: SessionLink
    let handshake: HandshakeResult
    let configuration: SessionConfiguration
    let serverSessionID: String
    let peerAddress: String

    /// The binding message 1's early frames present their tokens for, and whether they are being
    /// handled right now.
    var earlyBinding: [UInt8]
    var processingEarlyData = false
    var earlyDataAccepted: Bool
    /// Message 1 was a fresh IK/NK initiation (`ServerHandshaking.Finished.fresh`).
    let freshInitiation: Bool
    /// A service_request whose login the shell is checking (`.authenticationRequested`).
    var pendingLogin: PendingLogin?

    var clientSessionID: String?
    var identity: Identity?
    var authorizationTokenID: TokenProof.TokenID?
    /// The menu last sent; indices in requests refer to it.
    var menu: ApplicationMenu?
    /// Which grant opened each local stream.
    var streamGrants: [UInt32: ApplicationGrant] = [:]
    /// The stream of a dedicated connection (begun in the `initial_request`).
    var dedicatedStream: UInt32?
    /// The code of the client's CLOSE frame, once it sent one.
    var peerCloseCode: USPError.Code?

    var state: ServerSession.State {
        switch phase {
        case .awaitingInitialRequest: .awaitingInitialRequest
        case .established: .established
        case .handingOff: .handingOff
        case .closed: .closed
        }
    }

    init(_ done: ServerHandshaking.Finished, handshakeBytes: [UInt8], configuration: SessionConfiguration,
         serverSessionID: String, peerAddress: String) throws(USPError) {
        handshake = done.result
        self.configuration = configuration
        self.serverSessionID = serverSessionID
        self.peerAddress = peerAddress
        earlyBinding = done.earlyBinding
        earlyDataAccepted = done.earlyFrames != nil
        freshInitiation = done.fresh
        link = try SessionLink(result: done.result, configuration: configuration, role: .server, unsentHandshake: handshakeBytes)
    }

    /// Right after the handshake: reports it, acts on message 1's admitted early frames, then
    /// handles the records that came with the last handshake message.
    mutating func start(_ done: ServerHandshaking.Finished, now: Timestamp, delegate: some ServerSessionDelegate,
                        into actions: inout ServerActions) {
        actions.append(.handshakeCompleted(pattern: done.result.pattern, clientStatic: done.result.remoteStatic,
                                           earlyDataAccepted: earlyDataAccepted))
        do throws(USPError) {
            if var frames = done.earlyFrames {
                processingEarlyData = true
                defer { processingEarlyData = false }
                let sawRekey = try withMutableBytes(&frames) { (f) throws(USPError) -> Bool in
                    try handleRecord(UnsafeRawBufferPointer(f), now: now, delegate: delegate, into: &actions)
                }
                if sawRekey { throw USPError(.unexpectedMessage, "REKEY in early frames") }
            }
            try link.flush()
        } catch {
            fail(error, into: &actions)
            return
        }
        if !done.rest.isEmpty, state != .closed {
            done.rest.withUnsafeBytes { receive($0, now: now, delegate: delegate, into: &actions) }
        }
    }

    mutating func receive(_ bytes: UnsafeRawBufferPointer, now: Timestamp, delegate: some ServerSessionDelegate,
                          into actions: inout ServerActions) {
        switch phase {
        case .closed: return
        case .handingOff: preconditionFailure("the I/O shell holds input while a hand-off is under way")
        case .awaitingInitialRequest, .established: break
        }
        do throws(USPError) {
            try link.withReaderLent { (reader) throws(USPError) in reader.append(bytes) }
            // While a login is being checked, input waits in the reader, in order.
            if pendingLogin == nil { try processRecords(now: now, delegate: delegate, into: &actions) }
            try link.flush()
        } catch {
            fail(error, into: &actions)
        }
    }

    /// The client closed its side of the TCP connection. During a hand-off the application decides.
    mutating func endOfInput(into actions: inout ServerActions) {
        guard state != .closed, state != .handingOff else { return }
        do throws(USPError) {
            try link.withReaderLent { (reader) throws(USPError) in try reader.checkEndOfInput() }
        } catch {
            fail(error, into: &actions)
            return
        }
        fail(USPError(.unexpectedEOF, "client closed the connection without CLOSE"), into: &actions, sendClose: false)
    }

    mutating func processRecords(now: Timestamp, delegate: some ServerSessionDelegate,
                                         into actions: inout ServerActions) throws(USPError) {
        guard var reader = link.reader.take() else { preconditionFailure("records are processed once at a time") }
        defer { link.reader = reader }
        try actions.lending(&reader) { (reader, actions) throws(USPError) in
            while state != .closed, pendingLogin == nil {
                let outcome = try reader.nextRecord { (plaintext) throws(USPError) -> Bool in
                    try handleRecord(UnsafeRawBufferPointer(plaintext), now: now, delegate: delegate, into: &actions)
                }
                guard let sawRekey = outcome else { break }
                if sawRekey { try reader.opener.rekey() }
            }
        }
    }

    /// Dispatches every frame of one record's plaintext. Returns true if it carried REKEY.
    mutating func handleRecord(_ plaintext: UnsafeRawBufferPointer, now: Timestamp, delegate: some ServerSessionDelegate,
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
                pendingLogin?.deferredFrames = Array(plaintext[frames.offset...])
                break
            }
        }
        return sawRekey
    }

    mutating func handleFrame(_ frame: FrameView, now: Timestamp, delegate: some ServerSessionDelegate,
                                      into actions: inout ServerActions) throws(USPError) {
        if state == .awaitingInitialRequest {
            switch frame {
            case .message, .padding, .ping, .pong, .close, .rekey: break
            case .open, .accept, .reject, .data, .window, .fin, .reset, .shape:
                throw USPError(.unexpectedMessage, "\(frame.type.name) frame before the initial request")
            }
        }
        switch frame {
        case .message(let kind, let json):
            link.streams.noteProgress()
            try handleMessage(kind: kind, json: json, now: now, delegate: delegate, into: &actions)
        case .open(let peerID, let body):
            try handleOpen(peerID: peerID, body: body, now: now, delegate: delegate, into: &actions)
        case .padding, .rekey, .pong, .accept, .reject, .data, .window, .fin, .reset, .ping, .close, .shape:
            switch try link.applyClientFrame(frame) {
            case .none: return
            case .data(let stream, let data): actions.append(.streamData(stream: stream, data: []), carrying: data)
            case .writable(let stream): actions.append(.streamWritable(stream: stream))
            case .finished(let stream, let closed):
                actions.append(.streamFinished(stream: stream))
                if closed { streamGone(stream, .ok, into: &actions) }
            case .reset(let stream, let code): streamGone(stream, code, into: &actions)
            case .close(let c):
                phase = .closed
                peerCloseCode = c
                actions.append(.closed(c == .ok ? nil : USPError(.closedByPeer, "client closed the session with \(c.name)")))
            }
        }
    }

    mutating func streamGone(_ localID: UInt32, _ code: USPError.Code, into actions: inout ServerActions) {
        streamGrants[localID] = nil
        actions.append(.streamClosed(stream: localID, code: code))
    }


    mutating func fail(_ error: USPError, into actions: inout ServerActions, sendClose: Bool = true) {
        // The client learns the code only; the detail stays in the server's log.
        if sendClose { link.sendClose(error.code) }
        phase = .closed
        actions.append(.closed(error))
    }

}
