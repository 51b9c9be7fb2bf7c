/// What the client asks of an established session: services, streams, application actions, and
/// the application side's calls on its streams.
extension ClientTransport {
    /// Sends `requested_services`: authentication or invalidation at index 0 and application requests.
    /// `authorizationToken` is a secret; the session sends a presentation bound to this connection.
    mutating func requestServices(_ services: [ServiceIndex: [String: JSONValue]], authentication: AuthenticationRequest? = nil,
                                         authorizationToken: String? = nil, clientIP: String? = nil) throws(USPError) {
        let presentation = try authorizationToken.map { (t) throws(USPError) -> String in
            try TokenProof.present(secret: t, handshakeHash: handshake.handshakeHash)
        }
        let request = ServiceRequest(clientSessionID: clientSessionID, authorizationToken: presentation,
                                     authentication: authentication, services: services, clientIP: clientIP)
        try link.send(.serviceRequest(request))
        try link.flush()
    }

    /// Opens a stream on this connection with an application token secret. Returns the stream ID;
    /// data may be written at once, up to the server's window.
    mutating func openStream(applicationToken: String) throws(USPError) -> UInt32 {
        let id = try link.streams.open()
        let session = ApplicationSessionRequest(token: try TokenProof.present(secret: applicationToken, handshakeHash: handshake.handshakeHash),
                                                action: .begin, clientTCPStream: nil, parameters: nil)
        try link.send(.open(stream: id, session: try session.encodeOpenBody()))
        try link.flush()
        return id
    }

    /// Opens a stream on this connection for the application `name` on this session's menu; the
    /// server issues the application token (docs/PROTOCOL.md §7.1). Returns the stream ID.
    mutating func openStream(application name: String, request: [String: JSONValue] = [:]) throws(USPError) -> UInt32 {
        let session = ApplicationSessionRequest(application: name, request: request)
        let body = try session.encodeOpenBody()
        let id = try link.streams.open()
        try link.send(.open(stream: id, session: body))
        try link.flush()
        return id
    }

    /// Sends an `application_session` action (`end` or application-defined) for a token.
    mutating func applicationAction(token: String, action: ApplicationAction, parameters: [String: JSONValue]? = nil) throws(USPError) {
        let app = ApplicationSessionRequest(token: try TokenProof.present(secret: token, handshakeHash: handshake.handshakeHash),
                                            action: action, clientTCPStream: nil, parameters: parameters)
        try link.send(.initialRequest(InitialRequest(clientSessionID: clientSessionID, authorizationToken: nil, applicationSession: app)))
        try link.flush()
    }

    /// Sends bytes on `stream`, as much as the server's credit allows; returns the bytes taken.
    mutating func write(stream: UInt32, _ data: UnsafeRawBufferPointer) throws(USPError) -> Int {
        guard state == .established || state == .awaitingReply else { return 0 }
        return try link.write(stream: stream, data)
    }

    /// `write(stream:_:)` with the bytes written in place by `fill` (`SessionLink.write(stream:upTo:fill:)`).
    mutating func write(stream: UInt32, upTo limit: Int, fill: (UnsafeMutableRawBufferPointer) -> Int) throws(USPError) -> Int {
        guard state == .established || state == .awaitingReply else { return 0 }
        return try link.write(stream: stream, upTo: limit, fill: fill)
    }

    /// The caller took `count` bytes of `stream`: returns credit to the server when due.
    mutating func consumed(stream: UInt32, count: Int) throws(USPError) {
        guard state != .closed else { return }
        try link.consumed(stream: stream, count: count)
    }

    /// Half-closes `stream`.
    mutating func finish(stream: UInt32, into actions: inout ClientActions) throws(USPError) {
        guard state != .closed else { return }
        if try link.finish(stream: stream) { actions.append(.streamClosed(stream: stream, code: .ok)) }
    }

    /// Aborts `stream` with `code`.
    mutating func reset(stream: UInt32, code: USPError.Code, into actions: inout ClientActions) throws(USPError) {
        guard state != .closed else { return }
        if try link.reset(stream: stream, code: code) { actions.append(.streamClosed(stream: stream, code: code)) }
    }

    mutating func ping(_ value: UInt64) throws(USPError) {
        guard state != .closed else { return }
        try link.send(.ping(value))
        try link.flush()
    }

    mutating func close(code: USPError.Code = .ok, into actions: inout ClientActions) {
        guard state != .closed else { return }
        link.sendClose(code)
        phase = .closed
        actions.append(.closed(code == .ok ? nil : USPError(code, "client closed the session")))
    }
}
