/// The client's handshake phase: message 1 written (with the initial request and first bytes in
/// it when IK or NK allow), message 2 assembled from whatever pieces TCP delivers, and in XX
/// message 3 written once the delegate accepted the server's key.
struct ClientHandshaking {
    var initiator: InitiatorHandshake
    /// What message 1 asked for (the transport sends it after the handshake if it did not fit).
    let start: ClientStart
    /// Message 1's early frames carried the initial request.
    var earlySent = false
    /// Message 2's bytes so far.
    var buffer: [UInt8] = []
    /// Handshake messages not yet drained (message 1, then in XX message 3).
    var unsent: [UInt8] = []

    struct Finished {
        let result: HandshakeResult
        /// Bytes that followed message 2 (the first records).
        let rest: [UInt8]
    }

    init(initiator: InitiatorHandshake, start request: ClientStart, sessionID clientSessionID: String, hello: Hello) throws(USPError) {
        self.initiator = initiator
        // Sent before any credit is known, so it must fit the smallest window a server may announce.
        guard request.initialData.count <= StreamLimits.minInitialWindow else {
            throw USPError(.flowControl, "initial data of \(request.initialData.count) bytes exceeds \(StreamLimits.minInitialWindow), the smallest stream window; write the rest once the stream is accepted")
        }
        start = request
        var failure: USPError?
        if self.initiator.pattern == .xx {
            unsent += try self.initiator.writeMessage1(hello: hello)
        } else {
            let capacity = self.initiator.earlyFrameCapacity
            var included = false
            let message = try self.initiator.writeMessage1(hello: hello) { binding -> [UInt8] in
                do throws(USPError) {
                    let frames = try request.initialFrames(sessionID: clientSessionID, binding: binding)
                    // Too big for message 1: send nothing early; the request follows the handshake.
                    guard frames.count <= capacity else { return [] }
                    included = true
                    return frames
                } catch { failure = error; return [] }
            }
            if let failure { throw failure }
            unsent += message
            earlySent = included
        }
    }

    /// nil until message 2 is complete; then the result (message 3 is in `unsent` for XX).
    mutating func consume(_ bytes: UnsafeRawBufferPointer, now: Timestamp, configuration: SessionConfiguration,
                          delegate: some ClientSessionDelegate) throws(USPError) -> Finished? {
        buffer.append(contentsOf: bytes)
        guard buffer.count >= HandshakeLayout.message2Length else { return nil }
        let rest = Array(buffer[HandshakeLayout.message2Length...])
        let message2 = Array(buffer[0..<HandshakeLayout.message2Length])
        buffer = []
        switch try initiator.readMessage2(message2) {
        case .finished(let result):
            return Finished(result: result, rest: rest)
        case .needMessage3(let serverStatic, _):
            guard delegate.acceptServerKey(serverStatic) else {
                throw USPError(.serverKeyMismatch, "server key \(Fingerprint.of(serverStatic)) refused")
            }
            let (message3, result) = try initiator.writeMessage3(hello: configuration.hello(now: now))
            unsent += message3
            return Finished(result: result, rest: rest)
        }
    }

    mutating func drain<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        defer { unsent.removeAll() }
        return unsent.withUnsafeBytes(body)
    }
}

extension ClientStart {
    /// The `initial_request` for `start`, with tokens presented for `binding`. The authorization
    /// token goes with a menu request and with a begin by name (whose menu it selects); a begin
    /// with an application token needs none.
    func initialRequest(sessionID: String, binding: [UInt8]) throws(USPError) -> InitialRequest {
        var request = InitialRequest(clientSessionID: sessionID, authorizationToken: nil, applicationSession: nil)
        if let app = application {
            if let secret = app.token {
                request.applicationSession = ApplicationSessionRequest(
                    token: try TokenProof.present(secret: secret, handshakeHash: binding), action: app.action,
                    clientTCPStream: app.action == .begin ? 1 : nil, parameters: app.parameters)
                return request
            }
            guard let name = app.name else { throw USPError(.malformedMessage, "an application start needs a token or a name") }
            request.applicationSession = ApplicationSessionRequest(application: name, request: app.request, clientTCPStream: 1)
        }
        if let token = authorizationToken {
            request.authorizationToken = try TokenProof.present(secret: token, handshakeHash: binding)
        }
        return request
    }

    /// The initial request (and first DATA) as frames, with tokens presented for `binding`.
    func initialFrames(sessionID: String, binding: [UInt8]) throws(USPError) -> [UInt8] {
        let request = try initialRequest(sessionID: sessionID, binding: binding)
        var w = WireWriter()
        let message = SessionMessage.initialRequest(request)
        var body = WireWriter()
        try message.encode(into: &body)
        Frame.message(kind: message.kind.rawValue, json: Array(body.bytes.dropFirst())).encode(into: &w)
        if application?.action == .begin, !initialData.isEmpty {
            Frame.data(stream: 1, data: initialData).encode(into: &w)
        }
        return w.bytes
    }
}
