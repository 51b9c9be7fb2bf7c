import Testing
import USPCore

/// Every message kind and every variant survives encode → decode, and the JSON text is
/// pinned so field names stay those of the proposal.
@Suite struct MessageRoundTripTests {
    static let passwordMethod = AuthenticationMethod(
        method: "password", expectedRequestBody: ["user": "string", "password": "string"])

    static let echo = ApplicationOffer(
        name: "echo", description: "Echoes input", expectedRequestBody: ["message": "string"])

    // MARK: initial_request

    @Test func initialRequestExactJSON() throws {
        let m = SessionMessage.initialRequest(InitialRequest(
            clientSessionID: "c-1", authorizationToken: nil,
            applicationSession: ApplicationSessionRequest(
                token: "app-tok", action: .begin, clientTCPStream: 3, parameters: ["rows": 24])))
        #expect(try m.encode().first == 1)
        #expect(try jsonText(m) == #"{"application_session":{"action":"begin","client_tcp_stream":3,"parameters":{"rows":24},"token":"app-tok"},"authorization_token":null,"client_session_id":"c-1","v":1}"#)
        expectRoundTrip(m)
    }

    @Test func initialRequestWithoutApplicationSessionExactJSON() throws {
        let m = SessionMessage.initialRequest(InitialRequest(clientSessionID: "c-1", authorizationToken: "auth-tok"))
        #expect(try jsonText(m) == #"{"application_session":null,"authorization_token":"auth-tok","client_session_id":"c-1","v":1}"#)
        expectRoundTrip(m)
    }

    @Test(arguments: [
        nil,
        ApplicationSessionRequest(token: "t", action: .begin),
        ApplicationSessionRequest(token: "t", action: .begin, clientTCPStream: 0),
        ApplicationSessionRequest(token: "t", action: .begin, clientTCPStream: UInt32.max),
        ApplicationSessionRequest(token: "t", action: .end),
        ApplicationSessionRequest(token: "t", action: "resize", parameters: ["rows": 24, "cols": 80]),
        ApplicationSessionRequest(token: "t", action: "noop", parameters: [:]),
    ])
    func initialRequestVariants(session: ApplicationSessionRequest?) {
        expectRoundTrip(.initialRequest(InitialRequest(clientSessionID: "c", authorizationToken: nil, applicationSession: session)))
        expectRoundTrip(.initialRequest(InitialRequest(clientSessionID: "c", authorizationToken: "a", applicationSession: session)))
    }

    @Test func applicationSessionEndAndCustomExactJSON() throws {
        let end = SessionMessage.initialRequest(InitialRequest(
            clientSessionID: "c", applicationSession: ApplicationSessionRequest(token: "t", action: .end)))
        #expect(try jsonText(end) == #"{"application_session":{"action":"end","token":"t"},"authorization_token":null,"client_session_id":"c","v":1}"#)
        let custom = SessionMessage.initialRequest(InitialRequest(
            clientSessionID: "c", applicationSession: ApplicationSessionRequest(token: "t", action: "status")))
        #expect(try jsonText(custom) == #"{"application_session":{"action":"status","token":"t"},"authorization_token":null,"client_session_id":"c","v":1}"#)
        // A custom action spelled "begin" is the begin action.
        #expect(ApplicationAction("begin") == .begin)
    }

    // MARK: menu

    @Test func menuBeforeLoginExactJSON() throws {
        let m = SessionMessage.menu(ApplicationMenu(
            serverSessionID: "s-1", authentication: .methods([Self.passwordMethod]), applications: [1: Self.echo]))
        #expect(try m.encode().first == 2)
        #expect(try jsonText(m) == #"{"application_menu":{"0":[{"auth_method":"password","expected_request_body":{"password":"string","user":"string"}}],"1":{"description":"Echoes input","expected_request_body":{"message":"string"},"name":"echo"}},"server_session_id":"s-1","v":1}"#)
        expectRoundTrip(m)
    }

    @Test func menuAfterLoginExactJSON() throws {
        let m = SessionMessage.menu(ApplicationMenu(
            serverSessionID: "s-1", authentication: .tokenInvalidation(TokenInvalidationOffer()),
            applications: [2: ApplicationOffer(name: "ssh", expectedRequestBody: [:], extra: ["application_field1": "v1"])]))
        #expect(try jsonText(m) == #"{"application_menu":{"0":{"expected_request_body":["<token>"],"name":"invalidate_tokens"},"2":{"application_field1":"v1","expected_request_body":{},"name":"ssh"}},"server_session_id":"s-1","v":1}"#)
        expectRoundTrip(m)
    }

    @Test func menuVariants() {
        expectRoundTrip(.menu(ApplicationMenu(serverSessionID: "s")))
        expectRoundTrip(.menu(ApplicationMenu(serverSessionID: "s", authentication: .methods([]))))
        expectRoundTrip(.menu(ApplicationMenu(serverSessionID: "s", applications: [1: Self.echo, 4_294_967_295: Self.echo])))
        expectRoundTrip(.menu(ApplicationMenu(
            serverSessionID: "s",
            authentication: .methods([
                Self.passwordMethod,
                AuthenticationMethod(
                    method: "ed25519", expectedRequestBody: ["public_key": "string", "signature": "string", "note": "string?"],
                    extra: ["auth_field1": "auth_value1", "challenge": ["nonce": "abc", "ttl": 30], "weight": 0.5]),
            ]),
            applications: [
                3: ApplicationOffer(name: "app3", expectedRequestBody: ["required_field1": ""],
                                    extra: ["application_field1": "application_value1", "tags": ["a", "b"], "n": nil]),
            ])))
        expectRoundTrip(.menu(ApplicationMenu(
            serverSessionID: "s",
            authentication: .tokenInvalidation(TokenInvalidationOffer(
                name: "revoke", expectedRequestBody: [], extra: ["max": 16])))))
    }

    @Test func menuIndicesAreOrderedByKeyBytes() throws {
        let m = SessionMessage.menu(ApplicationMenu(
            serverSessionID: "s",
            applications: [2: ApplicationOffer(name: "b", expectedRequestBody: [:]),
                           10: ApplicationOffer(name: "a", expectedRequestBody: [:])]))
        #expect(try jsonText(m) == #"{"application_menu":{"10":{"expected_request_body":{},"name":"a"},"2":{"expected_request_body":{},"name":"b"}},"server_session_id":"s","v":1}"#)
    }

    /// The proposal's menu example (its first entry's "auth_method1" corrected to "auth_method"),
    /// including the "ecpected_request_body" typo on index 1.
    @Test func proposalMenuExampleDecodes() throws {
        let json = #"""
        {
          "v": 1,
          "server_session_id":"<some session id>",
          "application_menu": {
            "0": [
              {"auth_method":"auth_method_name_or_id1","auth_field1":"auth_value1","auth_field2":"auth_value2",
               "expected_request_body":{"required_field1":"","required_field2":""}},
              {"auth_method":"auth_method1","auth_field1":"auth_value1","auth_field2":"auth_value2",
               "expected_request_body":{"required_field1":"","required_field2":""}}
            ],
            "1": {"name":"app1","application_field1":"application_value1","application_field2":"application_value2",
                  "ecpected_request_body":{"required_field1":"","required_field2":""}},
            "2": {"name":"app2","application_field1":"application_value1","application_field2":"application_value2",
                  "expected_request_body":{"required_field1":"","required_field2":""}}
          }
        }
        """#
        guard case .menu(let menu) = try SessionMessage.decode(messageBytes(.menu, json)) else {
            Issue.record("not a menu")
            return
        }
        #expect(menu.serverSessionID == "<some session id>")
        guard case .methods(let methods) = menu.authentication else {
            Issue.record("index 0 is not a method list")
            return
        }
        #expect(methods.map(\.method) == ["auth_method_name_or_id1", "auth_method1"])
        #expect(methods[0].extra == ["auth_field1": "auth_value1", "auth_field2": "auth_value2"])
        #expect(menu.applications.keys.sorted() == [1, 2])
        let app1 = try #require(menu.applications[1])
        #expect(app1.name == "app1")
        #expect(app1.expectedRequestBody == ["required_field1": "", "required_field2": ""])
        #expect(app1.extra == ["application_field1": "application_value1", "application_field2": "application_value2"])
        // Re-encoding writes the fixed spelling only.
        let text = try jsonText(.menu(menu))
        #expect(!text.contains("ecpected"))
        #expect(text.contains(#""1":{"application_field1":"application_value1","application_field2":"application_value2","expected_request_body":{"required_field1":"","required_field2":""},"name":"app1"}"#))
    }

    @Test func typoAliasIsAcceptedEverywhere() throws {
        let withTypo = #"{"v":1,"server_session_id":"s","application_menu":{"0":[{"auth_method":"pw","ecpected_request_body":{"user":"string"}}],"1":{"name":"echo","ecpected_request_body":{"message":"string"}}}}"#
        let fixed = #"{"v":1,"server_session_id":"s","application_menu":{"0":[{"auth_method":"pw","expected_request_body":{"user":"string"}}],"1":{"name":"echo","expected_request_body":{"message":"string"}}}}"#
        #expect(try SessionMessage.decode(messageBytes(.menu, withTypo)) == SessionMessage.decode(messageBytes(.menu, fixed)))
        let invalidation = #"{"v":1,"server_session_id":"s","application_menu":{"0":{"name":"invalidate_tokens","ecpected_request_body":["<token>"]}}}"#
        #expect(try SessionMessage.decode(messageBytes(.menu, invalidation))
                == .menu(ApplicationMenu(serverSessionID: "s", authentication: .tokenInvalidation(TokenInvalidationOffer()))))
    }

    // MARK: service_request

    @Test func serviceRequestExactJSON() throws {
        let auth = SessionMessage.serviceRequest(ServiceRequest(
            clientSessionID: "c-1", authorizationToken: nil,
            authentication: .credentials(["auth_method": "password", "user": "ann", "password": "pw"]),
            services: [1: ["message": "hi"], 3: [:]]))
        #expect(try auth.encode().first == 3)
        #expect(try jsonText(auth) == #"{"authorization_token":null,"client_session_id":"c-1","requested_services":{"0":{"auth_method":"password","password":"pw","user":"ann"},"1":{"message":"hi"},"3":{}}}"#)
        expectRoundTrip(auth)

        let invalidate = SessionMessage.serviceRequest(ServiceRequest(
            clientSessionID: "c-1", authorizationToken: "auth-tok", authentication: .invalidateTokens(["t1", "t2"])))
        #expect(try jsonText(invalidate) == #"{"authorization_token":"auth-tok","client_session_id":"c-1","requested_services":{"0":["t1","t2"]}}"#)
        expectRoundTrip(invalidate)
    }

    @Test func serviceRequestVariants() {
        expectRoundTrip(.serviceRequest(ServiceRequest(clientSessionID: "c")))
        expectRoundTrip(.serviceRequest(ServiceRequest(clientSessionID: "c", authentication: .invalidateTokens([]))))
        expectRoundTrip(.serviceRequest(ServiceRequest(clientSessionID: "c", authentication: .credentials([:]))))
        expectRoundTrip(.serviceRequest(ServiceRequest(
            clientSessionID: "c", authorizationToken: "a",
            services: [7: ["port": 22, "ratio": 1.5, "flags": [true, false, nil], "nested": ["k": ["x": "y"]]]])))
    }

    // MARK: service_reply

    @Test func serviceReplyExactJSON() throws {
        let m = SessionMessage.serviceReply(ServiceReply(results: [
            0: .token("auth-tok"),
            1: .token("app-tok"),
            5: .error(WireError(.authorizationMissing)),
        ]))
        #expect(try m.encode().first == 4)
        #expect(try jsonText(m) == #"{"0":{"token":"auth-tok"},"1":{"token":"app-tok"},"5":{"error":{"code":"authorization_token_missing","message":"Authorization token missing"}}}"#)
        expectRoundTrip(m)

        let invalidated = SessionMessage.serviceReply(ServiceReply(results: [0: .invalidated(2)]))
        #expect(try jsonText(invalidated) == #"{"0":{"invalidated":2}}"#)
        expectRoundTrip(invalidated)
    }

    @Test func serviceReplyVariants() {
        expectRoundTrip(.serviceReply(ServiceReply()))
        expectRoundTrip(.serviceReply(ServiceReply(results: [0: .error(WireError(.authenticationFailed, "Wrong password"))])))
        expectRoundTrip(.serviceReply(ServiceReply(results: [0: .invalidated(0), 9: .error(WireError(.unknownIndex))])))
        expectRoundTrip(.serviceReply(ServiceReply(results: [0: .invalidated(UInt32.max)])))
    }

    @Test func unknownErrorCodeNameIsKept() throws {
        let json = #"{"7":{"error":{"code":"quota_exceeded","message":"Quota exceeded"}}}"#
        let m = try SessionMessage.decode(messageBytes(.serviceReply, json))
        guard case .serviceReply(let reply) = m, case .error(let e) = reply.results[7] else {
            Issue.record("unexpected \(m)")
            return
        }
        #expect(e.code.name == "quota_exceeded")
        #expect(e.code.wireValue == WireError.unknownCodeWireValue)
        #expect(try jsonText(m) == json)
        // A known name maps to the known code.
        let known = try SessionMessage.decode(messageBytes(.error, #"{"error":{"code":"token_expired","message":"x"}}"#))
        #expect(known == .error(SessionErrorMessage(.tokenExpired, "x")))
    }

    // MARK: application_session_reply

    @Test func applicationSessionReplyExactJSON() throws {
        let began = SessionMessage.applicationSessionReply(ApplicationSessionReply(
            serverSessionID: "s-1", outcome: .session(.began(clientTCPStream: 1, serverTCPStream: 7))))
        #expect(try began.encode().first == 5)
        #expect(try jsonText(began) == #"{"application_session":{"action":"begin","client_tcp_stream":1,"server_tcp_stream":7},"server_session_id":"s-1"}"#)
        expectRoundTrip(began)

        let result = SessionMessage.applicationSessionReply(ApplicationSessionReply(
            serverSessionID: "s-1", outcome: .session(ApplicationSessionResult(action: "status", result: ["running": true]))))
        #expect(try jsonText(result) == #"{"application_session":{"action":"status","result":{"running":true}},"server_session_id":"s-1"}"#)
        expectRoundTrip(result)

        let failed = SessionMessage.applicationSessionReply(ApplicationSessionReply(
            serverSessionID: "s-1", outcome: .error(WireError(.tokenInvalid))))
        #expect(try jsonText(failed) == #"{"error":{"code":"token_invalid","message":"Token invalid"},"server_session_id":"s-1"}"#)
        expectRoundTrip(failed)
    }

    @Test func applicationSessionReplyVariants() {
        expectRoundTrip(.applicationSessionReply(ApplicationSessionReply(
            serverSessionID: "s", outcome: .session(.began(clientTCPStream: nil, serverTCPStream: 0)))))
        expectRoundTrip(.applicationSessionReply(ApplicationSessionReply(
            serverSessionID: "s", outcome: .session(ApplicationSessionResult(action: .end, clientTCPStream: 4)))))
        expectRoundTrip(.applicationSessionReply(ApplicationSessionReply(
            serverSessionID: "s", outcome: .session(ApplicationSessionResult(action: "stats", result: [:])))))
    }

    // MARK: error

    @Test func errorExactJSON() throws {
        let m = SessionMessage.error(SessionErrorMessage(.authorizationInvalid))
        #expect(try m.encode().first == 6)
        #expect(try jsonText(m) == #"{"error":{"code":"authorization_token_invalid","message":"Authorization token invalid"}}"#)
        expectRoundTrip(m)
        expectRoundTrip(.error(SessionErrorMessage(WireError(.shuttingDown, "Server is restarting \"now\"\n"))))
    }

    // MARK: general

    @Test func kindsAndDirections() {
        #expect(SessionMessage.Kind.allCases.map(\.rawValue) == [1, 2, 3, 4, 5, 6])
        #expect(SessionMessage.Kind.allCases.map(\.name)
                == ["initial_request", "menu", "service_request", "service_reply", "application_session_reply", "error"])
        #expect(SessionMessage.Kind.allCases.filter(\.isClientToServer) == [.initialRequest, .serviceRequest])
    }

    @Test func encodeIntoWriterAppends() throws {
        let m = SessionMessage.error(SessionErrorMessage(.idleTimeout))
        var writer = WireWriter()
        writer.writeUInt16(0xABCD)
        try m.encode(into: &writer)
        #expect(Array(writer.bytes.prefix(2)) == [0xAB, 0xCD])
        #expect(Array(writer.bytes.dropFirst(2)) == (try m.encode()))
        // A failed encode leaves the writer as it was.
        let before = writer.bytes
        let bad = SessionMessage.menu(ApplicationMenu(serverSessionID: ""))
        #expect(throws: USPError(.malformedMessage)) { try bad.encode(into: &writer) }
        #expect(writer.bytes == before)
    }

    @Test func decodeAcceptsWhitespaceAndEscapes() throws {
        let json = " {\n\t\"error\" : { \"code\" : \"ok\" , \"message\" : \"caf\\u00e9 \\ud83d\\ude00 \\/ \\\"q\\\"\" } }\r\n"
        let m = try SessionMessage.decode(messageBytes(.error, json))
        #expect(m == .error(SessionErrorMessage(WireError(.ok, "café 😀 / \"q\""))))
        // Non-contiguous collections decode too.
        let bytes = try m.encode()
        #expect(try SessionMessage.decode(bytes.lazy.map { $0 }) == m)
        #expect(try SessionMessage.decode(bytes[...]) == m)
    }
}
