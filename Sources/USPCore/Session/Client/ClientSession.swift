/// The client side of a USP connection, sans I/O.
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

    public internal(set) var state: State = .idle
    public let configuration: SessionConfiguration
    public let clientSessionID: String
    var initiator: InitiatorHandshake
    var handshakeBuffer: [UInt8] = []
    var output = SessionOutput()
    /// The transport once the handshake is done (kept in `output`, which owns the outbound bytes).
    var link: SessionLink? {
        get { output.link }
        _modify { yield &output.link }
        set { output.link = newValue }
    }
    var start = ClientStart()
    var earlySent = false
    let random: any RandomSource

    public internal(set) var serverSessionID: String?
    public internal(set) var menu: ApplicationMenu?
    /// The stream of a dedicated application connection (always 1).
    public internal(set) var applicationStream: UInt32?

    public init(mode: InitiatorHandshake.Mode, configuration: SessionConfiguration = SessionConfiguration(),
                random: any RandomSource = SystemRandomSource(), ephemeral: KeyPair? = nil) throws(USPError) {
        self.configuration = configuration
        self.random = random
        initiator = try InitiatorHandshake(mode: mode, random: random, ephemeral: ephemeral)
        clientSessionID = "c-" + Base64URL.encode(random.bytes(12))
    }

    public var pattern: HandshakeLayout.Pattern { initiator.pattern }
    /// The handshake result once it is finished (its transport keys are the initial ones).
    public internal(set) var handshake: HandshakeResult?

    // MARK: - Start

    /// Writes message 1. With IK or NK the initial request (and `initialData`) go in it when they fit.
    public mutating func start(_ request: ClientStart = ClientStart(), now: Timestamp) throws(USPError) {
        precondition(state == .idle, "start is called once")
        // Sent before any credit is known, so it must fit the smallest window a server may announce.
        guard request.initialData.count <= StreamLimits.minInitialWindow else {
            throw USPError(.flowControl, "initial data of \(request.initialData.count) bytes exceeds \(StreamLimits.minInitialWindow), the smallest stream window; write the rest once the stream is accepted")
        }
        start = request
        let hello = configuration.hello(now: now)
        var failure: USPError?
        if initiator.pattern == .xx {
            output.handshakeBytes += try initiator.writeMessage1(hello: hello)
        } else {
            let capacity = initiator.earlyFrameCapacity
            let request = self.start
            let sessionID = clientSessionID
            var included = false
            let message = try initiator.writeMessage1(hello: hello) { binding -> [UInt8] in
                do throws(USPError) {
                    let frames = try Self.initialFrames(request, sessionID: sessionID, binding: binding, maxData: capacity)
                    // Too big for message 1: send nothing early; the request follows the handshake.
                    guard frames.count <= capacity else { return [] }
                    included = true
                    return frames
                } catch { failure = error; return [] }
            }
            if let failure { throw failure }
            output.handshakeBytes += message
            earlySent = included
        }
        state = .awaitingMessage2
    }

    /// The `initial_request` for `start`, with tokens presented for `binding`. The authorization
    /// token goes with a menu request and with a begin by name (whose menu it selects); a begin
    /// with an application token needs none.
    static func initialRequest(_ start: ClientStart, sessionID: String, binding: [UInt8]) throws(USPError) -> InitialRequest {
        var request = InitialRequest(clientSessionID: sessionID, authorizationToken: nil, applicationSession: nil)
        if let app = start.application {
            if let secret = app.token {
                request.applicationSession = ApplicationSessionRequest(
                    token: try TokenProof.present(secret: secret, handshakeHash: binding), action: app.action,
                    clientTCPStream: app.action == .begin ? 1 : nil, parameters: app.parameters)
                return request
            }
            guard let name = app.name else { throw USPError(.malformedMessage, "an application start needs a token or a name") }
            request.applicationSession = ApplicationSessionRequest(application: name, request: app.request, clientTCPStream: 1)
        }
        if let token = start.authorizationToken {
            request.authorizationToken = try TokenProof.present(secret: token, handshakeHash: binding)
        }
        return request
    }

    /// The initial request (and first DATA) as frames, with tokens presented for `binding`.
    static func initialFrames(_ start: ClientStart, sessionID: String, binding: [UInt8], maxData: Int) throws(USPError) -> [UInt8] {
        let request = try initialRequest(start, sessionID: sessionID, binding: binding)
        var w = WireWriter()
        let message = SessionMessage.initialRequest(request)
        var body = WireWriter()
        try message.encode(into: &body)
        Frame.message(kind: message.kind.rawValue, json: Array(body.bytes.dropFirst())).encode(into: &w)
        if start.application?.action == .begin, !start.initialData.isEmpty {
            Frame.data(stream: 1, data: start.initialData).encode(into: &w)
        }
        return w.bytes
    }

    // MARK: - Input

    public mutating func receive(_ bytes: some Collection<UInt8>, now: Timestamp, delegate: some ClientSessionDelegate,
                                 into actions: inout ClientActions) {
        let copy = Array(bytes)
        copy.withUnsafeBytes { receive($0, now: now, delegate: delegate, into: &actions) }
    }

    public mutating func receive(_ bytes: UnsafeRawBufferPointer, now: Timestamp, delegate: some ClientSessionDelegate,
                                 into actions: inout ClientActions) {
        guard state != .closed else { return }
        do throws(USPError) {
            try consume(bytes, now: now, delegate: delegate, into: &actions)
            try link?.flush()
        } catch {
            fail(error, into: &actions)
        }
    }

    /// The server closed its side of the TCP connection.
    public mutating func endOfInput(into actions: inout ClientActions) {
        guard state != .closed else { return }
        if let reader = link?.reader {
            do throws(USPError) { try reader.checkEndOfInput() } catch { fail(error, into: &actions); return }
        }
        let during = state == .awaitingMessage2 ? "during the handshake (wrong server key, stealth server, or not a USP server)" : "without CLOSE"
        fail(USPError(.unexpectedEOF, "server closed the connection \(during)"), into: &actions, sendClose: false)
    }

    mutating func consume(_ bytes: UnsafeRawBufferPointer, now: Timestamp, delegate: some ClientSessionDelegate,
                                  into actions: inout ClientActions) throws(USPError) {
        switch state {
        case .idle:
            throw USPError(.unexpectedMessage, "server spoke before message 1")
        case .awaitingMessage2:
            handshakeBuffer.append(contentsOf: bytes)
            guard handshakeBuffer.count >= HandshakeLayout.message2Length else { return }
            let rest = Array(handshakeBuffer[HandshakeLayout.message2Length...])
            let message2 = Array(handshakeBuffer[0..<HandshakeLayout.message2Length])
            handshakeBuffer = []
            let result: HandshakeResult
            switch try initiator.readMessage2(message2) {
            case .finished(let r):
                result = r
            case .needMessage3(let serverStatic, _):
                guard delegate.acceptServerKey(serverStatic) else {
                    throw USPError(.serverKeyMismatch, "server key \(Fingerprint.of(serverStatic)) refused")
                }
                let (message3, r) = try initiator.writeMessage3(hello: configuration.hello(now: now))
                output.handshakeBytes += message3
                result = r
            }
            handshake = result
            link = try SessionLink(result: result, configuration: configuration, role: .client)
            let accepted = earlySent && result.peerHello.flags.contains(.earlyDataAccepted)
            try afterHandshake(earlyAccepted: accepted)
            state = .awaitingReply
            actions.append(.handshakeCompleted(pattern: result.pattern, serverStatic: result.remoteStatic ?? [], earlyDataAccepted: accepted))
            if !rest.isEmpty {
                link!.reader!.append(rest)
                try processRecords(into: &actions)
            }
        case .awaitingReply, .established:
            link!.reader!.append(bytes)
            try processRecords(into: &actions)
        case .closed:
            return
        }
    }

    /// Sets up the application stream and, unless message 1 already carried it, sends the initial request.
    mutating func afterHandshake(earlyAccepted: Bool) throws(USPError) {
        if start.application?.action == .begin {
            let id = try link!.streams.open()
            precondition(id == 1, "the dedicated application stream is the first stream")
            applicationStream = id
        }
        let data = start.application?.action == .begin ? start.initialData : []
        if !earlyAccepted {
            let request = try Self.initialRequest(start, sessionID: clientSessionID, binding: handshake!.handshakeHash)
            try link!.send(.initialRequest(request))
            if !data.isEmpty {
                let sent = try withBytes(data) { (d) throws(USPError) in try link!.sendData(localID: 1, d) }
                precondition(sent == data.count, "initial data fits the minimum window")
            }
        } else if !data.isEmpty {
            link!.streams.consumeSendCredit(1, data.count)
        }
        try link!.flush()
    }

    mutating func processRecords(into actions: inout ClientActions) throws(USPError) {
        var reader = link!.reader.take()!
        defer { link?.reader = reader }
        while state != .closed {
            let outcome = try reader.nextRecord { (plaintext) throws(USPError) -> Bool in
                try handleRecord(UnsafeRawBufferPointer(plaintext), into: &actions)
            }
            guard let sawRekey = outcome else { break }
            if sawRekey { try reader.opener.rekey() }
        }
    }

    mutating func handleRecord(_ plaintext: UnsafeRawBufferPointer, into actions: inout ClientActions) throws(USPError) -> Bool {
        var frames = FrameReader(plaintext)
        var sawRekey = false
        while state != .closed, let frame = try frames.next() {
            if case .rekey = frame { sawRekey = true; continue }
            try handleFrame(frame, into: &actions)
        }
        return sawRekey
    }

    mutating func handleFrame(_ frame: FrameView, into actions: inout ClientActions) throws(USPError) {
        switch frame {
        case .padding, .rekey, .pong:
            return
        case .message(let kind, let json):
            link!.streams.noteProgress()
            var bytes = [kind]
            bytes.append(contentsOf: json)
            let message = try withBytes(bytes) { (b) throws(USPError) in try SessionMessage.decode(b) }
            try handleMessage(message, into: &actions)
        case .open:
            throw USPError(.unexpectedMessage, "OPEN from the server: only the client opens streams")
        case .accept(let localID, let peerID):
            if case .accepted = try link!.streams.peerAccepted(localID: localID, peerID: peerID) {
                actions.append(.streamAccepted(stream: localID))
            }
        case .reject(let localID, let code, let message):
            if case .rejected = try link!.streams.peerRejected(localID: localID, code: code) {
                actions.append(.streamRejected(stream: localID, code: .fromWire(code), message: String(decoding: message, as: UTF8.self)))
            }
        case .data(let peerID, let data):
            if case .data(let localID, _) = try link!.streams.peerData(peerID: peerID, count: data.count) {
                actions.append(.streamData(stream: localID, data: []), carrying: data)
            }
        case .window(let peerID, let increment):
            if case .credit(let localID, let available) = try link!.streams.peerWindow(peerID: peerID, increment: increment), available > 0 {
                actions.append(.streamWritable(stream: localID))
            }
        case .fin(let peerID):
            if case .peerFinished(let localID, let closed) = try link!.streams.peerFinished(peerID: peerID) {
                actions.append(.streamFinished(stream: localID))
                if closed { actions.append(.streamClosed(stream: localID, code: .ok)) }
            }
        case .reset(let peerID, let code):
            if case .reset(let localID, let code) = try link!.streams.peerReset(peerID: peerID, code: code) {
                actions.append(.streamClosed(stream: localID, code: .fromWire(code)))
            }
        case .ping(let value):
            try link!.streams.noteControlFrame()
            try link!.send(.pong(value))
        case .close(let code, _):
            state = .closed
            let c = USPError.Code.fromWire(code)
            actions.append(.closed(c == .ok ? nil : USPError(c, "server closed the session: \(c.name)")))
        }
    }

    mutating func handleMessage(_ message: SessionMessage, into actions: inout ClientActions) throws(USPError) {
        switch message {
        case .menu(let m):
            guard state == .awaitingReply || state == .established else {
                throw USPError(.unexpectedMessage, "menu in state \(state)")
            }
            serverSessionID = m.serverSessionID
            menu = m
            state = .established
            actions.append(.menu(m))
        case .serviceReply(let reply):
            guard state == .established else { throw USPError(.unexpectedMessage, "service_reply before the menu") }
            actions.append(.serviceReply(reply))
        case .applicationSessionReply(let reply):
            guard state == .awaitingReply || state == .established else {
                throw USPError(.unexpectedMessage, "application_session_reply in state \(state)")
            }
            serverSessionID = reply.serverSessionID
            if state == .awaitingReply, let stream = applicationStream {
                switch reply.outcome {
                case .session(let result):
                    guard let server = result.serverTCPStream else {
                        throw USPError(.malformedMessage, "application_session_reply begin without server_tcp_stream")
                    }
                    if case .accepted = try link!.streams.peerAccepted(localID: stream, peerID: server) {
                        actions.append(.streamAccepted(stream: stream))
                    }
                case .error(let e):
                    _ = try link!.streams.peerRejected(localID: stream, code: e.code.wireValue)
                    actions.append(.streamRejected(stream: stream, code: e.code, message: e.message))
                }
            }
            state = .established
            actions.append(.applicationSessionReply(reply))
        case .error(let e):
            actions.append(.serverError(e.error))
        case .initialRequest, .serviceRequest:
            throw USPError(.unexpectedMessage, "\(message.kind.name) is a client message; a server may not send it")
        }
    }

    /// Hands the bytes to send to `body` and forgets them (their storage is kept for reuse).
    public mutating func drainOutbound<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { output.drain(body) }

    /// Frees buffer storage while nothing is pending (call when the connection goes idle).
    public mutating func releaseIdleStorage() { output.releaseIdleStorage() }

    /// Bytes waiting to be sent.
    public var outboundByteCount: Int { output.byteCount }

    // test hook: seals `plaintext` (frame bytes) as one record, unchecked, as a hostile peer would.
    mutating func _sendRawRecord(_ plaintext: [UInt8]) throws(USPError) { try link!.sendRawRecord(plaintext) }

    mutating func fail(_ error: USPError, into actions: inout ClientActions, sendClose: Bool = true) {
        if sendClose { link?.sendClose(error.code) }
        state = .closed
        actions.append(.closed(error))
    }
}
