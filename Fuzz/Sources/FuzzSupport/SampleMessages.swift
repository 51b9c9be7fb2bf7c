import USPCore

/// Genuine protocol values made with the project's own encoders, for seed corpora.
public enum Samples {
    public static let clientSessionID = "c-fuzzclient0001"

    /// Session messages a client sends and a server sends, one of each shape.
    public static var messages: [SessionMessage] {
        let begin = ApplicationSessionRequest(application: "time", request: ["zone": "UTC"], clientTCPStream: 1)
        let byToken = ApplicationSessionRequest(token: "usp1p.AAAA.BBBB", action: "begin", clientTCPStream: 3, parameters: ["x": 1])
        let menu = ApplicationMenu(
            serverSessionID: "s-fuzzserver0001",
            authentication: .methods([AuthenticationMethod(method: "password", expectedRequestBody: ["user": "string", "password": "string"])]),
            applications: Dictionary(uniqueKeysWithValues: FuzzPolicy.applications.map { (ServiceIndex($0.index), $0.offer) }))
        var reply = ServiceReply()
        reply.results[1] = .error(WireError(.unknownApplication))
        reply.results[2] = .token("usp1.secret")
        return [
            .initialRequest(InitialRequest(clientSessionID: clientSessionID)),
            .initialRequest(InitialRequest(clientSessionID: clientSessionID, authorizationToken: "usp1p.tok", applicationSession: begin)),
            .initialRequest(InitialRequest(clientSessionID: clientSessionID, applicationSession: byToken)),
            .serviceRequest(ServiceRequest(clientSessionID: clientSessionID,
                                           authentication: .credentials(["user": "alice", "password": "correct horse"]),
                                           services: [3: ["user": "alice", "port": 22], 2: [:]])),
            .serviceRequest(ServiceRequest(clientSessionID: clientSessionID, authorizationToken: "usp1p.x",
                                           authentication: .invalidateTokens(["usp1.abc"]))),
            .menu(menu),
            .serviceReply(reply),
            .error(SessionErrorMessage(WireError(.malformedMessage))),
        ]
    }

    /// A MESSAGE frame carrying `message`.
    public static func frame(_ message: SessionMessage) -> [UInt8] {
        let encoded = try! message.encode()
        return Frame.message(kind: encoded[0], json: Array(encoded.dropFirst())).encoded
    }

    /// One frame of each type (PADDING last).
    public static var frames: [Frame] {
        [
            .message(kind: 1, json: Array(#"{"client_session_id":"c-1","v":1}"#.utf8)),
            .open(stream: 1, session: try! ApplicationSessionRequest(application: "echo", clientTCPStream: 1).encodeOpenBody()),
            .accept(opener: 1, acceptor: 2),
            .reject(opener: 3, code: 7, message: "refusé"),
            .data(stream: 1, data: Array("hello".utf8)),
            .window(stream: 1, increment: 65536),
            .fin(stream: 1),
            .reset(stream: 1, code: 2),
            .rekey,
            .ping(0x0102_0304_0506_0708),
            .pong(42),
            .close(code: 0, reason: "bye"),
            .padding(length: 5),
        ]
    }

    /// The hello a client sends, at the fixed instant.
    public static var hello: [UInt8] {
        var h = Hello()
        h.timestamp = FuzzKeys.now
        return h.bytes
    }
}
