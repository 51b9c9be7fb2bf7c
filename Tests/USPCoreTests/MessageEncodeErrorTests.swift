import Testing
import USPCore

/// Encoding checks the rules decoding enforces, so we never send what a peer must reject.
@Suite struct MessageEncodeErrorTests {
    static let app = ApplicationOffer(name: "echo", expectedRequestBody: ["message": "string"])

    @Test func sessionIDsAndTokens() {
        expectEncodeError(.initialRequest(InitialRequest(clientSessionID: "")), .malformedMessage,
                          "initial_request: client_session_id: empty session id")
        expectEncodeError(.initialRequest(InitialRequest(clientSessionID: String(repeating: "a", count: 129))), .malformedMessage,
                          "session id is 129 bytes, limit 128")
        expectEncodeError(.initialRequest(InitialRequest(clientSessionID: "c\n")), .malformedMessage, "not printable ASCII")
        expectEncodeError(.initialRequest(InitialRequest(clientSessionID: "c", authorizationToken: "")), .malformedMessage,
                          "initial_request: authorization_token: empty token")
        expectEncodeError(.initialRequest(InitialRequest(
            clientSessionID: "c", applicationSession: ApplicationSessionRequest(token: "", action: .begin))), .malformedMessage,
                          "initial_request: application_session.token: empty token")
        expectEncodeError(.initialRequest(InitialRequest(
            clientSessionID: "c", applicationSession: ApplicationSessionRequest(token: "t", action: ""))), .malformedMessage,
                          "application_session.action: empty action")
        expectEncodeError(.menu(ApplicationMenu(serverSessionID: "")), .malformedMessage, "menu: server_session_id: empty session id")
        expectEncodeError(.serviceRequest(ServiceRequest(clientSessionID: "")), .malformedMessage, "service_request: client_session_id")
        expectEncodeError(.serviceRequest(ServiceRequest(clientSessionID: "c", authentication: .invalidateTokens(["a", ""]))),
                          .malformedMessage, #"service_request: requested_services["0"][1]: empty token"#)
        expectEncodeError(.serviceReply(ServiceReply(results: [3: .token("")])), .malformedMessage, #"service_reply: ["3"].token: empty token"#)
        expectEncodeError(.applicationSessionReply(ApplicationSessionReply(
            serverSessionID: "", outcome: .error(WireError(.ok)))), .malformedMessage, "application_session_reply: server_session_id")
    }

    @Test func indexZeroIsReserved() {
        expectEncodeError(.menu(ApplicationMenu(serverSessionID: "s", applications: [0: Self.app])), .malformedMessage,
                          #"menu: application_menu["0"]: index 0 is reserved for authentication"#)
        expectEncodeError(.serviceRequest(ServiceRequest(clientSessionID: "c", services: [0: [:]])), .malformedMessage,
                          #"service_request: requested_services["0"]: index 0 is reserved for authentication"#)
        expectEncodeError(.serviceReply(ServiceReply(results: [1: .invalidated(1)])), .malformedMessage,
                          #"service_reply: ["1"].invalidated: only index 0 can report invalidated tokens"#)
    }

    @Test func indexCountLimit() throws {
        var apps: [ServiceIndex: ApplicationOffer] = [:]
        for i in 1...256 { apps[ServiceIndex(UInt32(i))] = Self.app }
        _ = try SessionMessage.menu(ApplicationMenu(serverSessionID: "s", applications: apps)).encode()
        expectEncodeError(.menu(ApplicationMenu(serverSessionID: "s", authentication: .methods([]), applications: apps)),
                          .malformedMessage, "menu: application_menu: 257 indices, limit 256")
        var results: [ServiceIndex: ServiceResult] = [:]
        for i in 0...256 { results[ServiceIndex(UInt32(i))] = .token("t") }
        expectEncodeError(.serviceReply(ServiceReply(results: results)), .malformedMessage, "service_reply: 257 indices, limit 256")
        var services: [ServiceIndex: [String: JSONValue]] = [:]
        for i in 1...257 { services[ServiceIndex(UInt32(i))] = [:] }
        expectEncodeError(.serviceRequest(ServiceRequest(clientSessionID: "c", services: services)), .malformedMessage,
                          "service_request: requested_services: 257 indices, limit 256")
    }

    @Test func menuEntries() {
        expectEncodeError(.menu(ApplicationMenu(serverSessionID: "s", applications: [1: ApplicationOffer(name: "", expectedRequestBody: [:])])),
                          .malformedMessage, #"menu: application_menu["1"].name: empty name"#)
        expectEncodeError(.menu(ApplicationMenu(serverSessionID: "s", applications: [
            1: ApplicationOffer(name: "a", expectedRequestBody: [:], extra: ["name": "b"]),
        ])), .malformedMessage, #"application_menu["1"]: extra field "name" collides with a defined field"#)
        expectEncodeError(.menu(ApplicationMenu(serverSessionID: "s", applications: [
            1: ApplicationOffer(name: "a", expectedRequestBody: [:], extra: ["ecpected_request_body": [:]]),
        ])), .malformedMessage, "collides")
        expectEncodeError(.menu(ApplicationMenu(serverSessionID: "s", authentication: .methods([
            AuthenticationMethod(method: "pw", expectedRequestBody: [:]),
            AuthenticationMethod(method: "", expectedRequestBody: [:]),
        ]))), .malformedMessage, #"application_menu["0"][1].auth_method: empty auth_method"#)
        expectEncodeError(.menu(ApplicationMenu(serverSessionID: "s", authentication: .methods([
            AuthenticationMethod(method: "pw", expectedRequestBody: [:], extra: ["auth_method": "x"]),
        ]))), .malformedMessage, "collides")
        expectEncodeError(.menu(ApplicationMenu(serverSessionID: "s", authentication: .tokenInvalidation(
            TokenInvalidationOffer(name: "")))), .malformedMessage, #"application_menu["0"].name: empty name"#)
    }

    @Test func errorsAndResults() {
        expectEncodeError(.error(SessionErrorMessage(WireError(USPError.Code(999, "Not A Name"), "x"))), .malformedMessage,
                          #"error: error.code: invalid code name "Not A Name""#)
        expectEncodeError(.applicationSessionReply(ApplicationSessionReply(
            serverSessionID: "s", outcome: .session(ApplicationSessionResult(action: .begin)))), .malformedMessage,
                          #"application_session_reply: application_session: missing field "server_tcp_stream" for action "begin""#)
    }

    @Test func tooLarge() throws {
        let fits = SessionMessage.error(SessionErrorMessage(WireError(.ok, String(repeating: "a", count: 64_900))))
        _ = try fits.encode()
        let big = SessionMessage.error(SessionErrorMessage(WireError(.ok, String(repeating: "a", count: 65_000))))
        expectEncodeError(big, .messageTooLarge, "error: encoded message is 65037 bytes, limit 65000")
        // Escapes count: 33,000 newlines become 66,000 bytes of "\n".
        let escaped = SessionMessage.error(SessionErrorMessage(WireError(.ok, String(repeating: "\n", count: 33_000))))
        expectEncodeError(escaped, .messageTooLarge)
    }
}
