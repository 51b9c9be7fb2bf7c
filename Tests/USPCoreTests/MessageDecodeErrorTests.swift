import Testing
import USPCore

/// Every way a session message can be wrong gives a specific `USPError`, never a crash.
@Suite struct MessageDecodeErrorTests {
    static let validInitial = #"{"v":1,"client_session_id":"c","authorization_token":null,"application_session":null}"#

    // MARK: framing

    @Test func emptyInput() {
        expectDecodeError([], .malformedMessage, "session message: empty")
    }

    @Test(arguments: [0, 7, 9, 255] as [UInt8])
    func unknownKind(kind: UInt8) {
        expectDecodeError(messageBytes(kind, "{}"), .malformedMessage, "unknown message kind \(kind)")
    }

    @Test func unknownKindNineHasExactDetail() {
        let e = decodeError([9])
        #expect(e?.detail == "unknown message kind 9")
    }

    @Test(arguments: SessionMessage.Kind.allCases)
    func kindWithoutJSON(kind: SessionMessage.Kind) {
        expectDecodeError([kind.rawValue], .malformedMessage, "\(kind.name): invalid JSON at byte 0: empty JSON text")
        expectDecodeError(messageBytes(kind, "  \n"), .malformedMessage, "empty JSON text")
    }

    @Test func invalidUTF8() {
        expectDecodeError([1] + Array(#"{"v":1,"client_session_id":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8),
                          .malformedMessage, "initial_request: JSON text is not valid UTF-8")
        expectDecodeError([6, 0xFF], .malformedMessage, "not valid UTF-8")
        expectDecodeError([6, 0xED, 0xA0, 0x80], .malformedMessage, "not valid UTF-8")  // encoded surrogate
        expectDecodeError([4, 0x7B, 0xC0, 0x80, 0x7D], .malformedMessage, "not valid UTF-8")  // overlong
    }

    @Test(arguments: SessionMessage.Kind.allCases)
    func nonObjectTopLevel(kind: SessionMessage.Kind) {
        for json in ["[]", "null", "1", "\"x\"", "true", "[{}]"] {
            expectDecodeError(kind, json, .malformedMessage, "\(kind.name): expected JSON object, got")
        }
    }

    @Test func tooLarge() throws {
        let big = messageBytes(.error, #"{"error":{"code":"ok","message":""# + String(repeating: "a", count: 65_000) + #""}}"#)
        expectDecodeError(big, .messageTooLarge, "limit 65000")
        // Exactly the limit decodes (padding with whitespace).
        let base = messageBytes(.error, #"{"error":{"code":"ok","message":"x"}}"#)
        let exact = base + [UInt8](repeating: 0x20, count: 65_000 - base.count)
        #expect(exact.count == 65_000)
        #expect(try SessionMessage.decode(exact) == .error(SessionErrorMessage(WireError(.ok, "x"))))
        expectDecodeError(exact + [0x20], .messageTooLarge)
    }

    // MARK: JSON syntax

    @Test(arguments: [
        (#"{"error":{"code":"ok","message":"x"}} x"#, "after the JSON value"),
        (#"{"error":{"code":"ok","message":"x"}"#, "expected ',' or '}'"),
        (#"{"error":{"code":"ok","message":"x}}"#, "unterminated string"),
        (#"{"error":{"code":"ok","message":"x",}}"#, "expected an object key"),
        (#"{"error" {"code":"ok","message":"x"}}"#, "expected ':'"),
        (#"{"error":{"code":'ok',"message":"x"}}"#, "expected a value"),
        (#"{"error":{"code":"ok","message":"\x"}}"#, "invalid escape"),
        (#"{"error":{"code":"ok","message":"\u12"}}"#, "invalid \\u escape"),
        (#"{"error":{"code":"ok","message":"\ud800"}}"#, "lone high surrogate"),
        (#"{"error":{"code":"ok","message":"\udc00"}}"#, "lone low surrogate"),
        (#"{"error":{"code":"ok","message":"\ud800\u0041"}}"#, "invalid low surrogate"),
        ("{\"error\":{\"code\":\"ok\",\"message\":\"a\u{1}b\"}}", "raw control character"),
        (#"{"error":{"code":"ok","message":"x","message":"y"}}"#, "duplicate key \"message\""),
        (#"{"error":tru}"#, "literal"),
        (#"{"error":nul"#, "truncated literal"),
        (#"{"e":01}"#, "leading zero"),
        (#"{"e":1.}"#, "digit expected after '.'"),
        (#"{"e":1e}"#, "digit expected in exponent"),
        (#"{"e":-}"#, "invalid number"),
        (#"{"e":1e999}"#, "number out of range"),
        (#"{"e":NaN}"#, "expected a value"),
        (#"{"e":[1,2}"#, "expected ',' or ']'"),
        ("\u{FEFF}{}", "expected a value"),
    ])
    func syntaxErrors(json: String, detail: String) {
        expectDecodeError(.error, json, .malformedMessage, detail)
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let depth = 30_000
        let json = #"{"error":"# + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
        expectDecodeError(.error, json, .malformedMessage, "nested deeper than 64")
        let objects = String(repeating: #"{"a":"#, count: 65) + "1" + String(repeating: "}", count: 65)
        expectDecodeError(.serviceReply, objects, .malformedMessage, "nested deeper than 64")
    }

    @Test func nestingUpToTheLimitDecodes() throws {
        // Top-level object (1) + requested_services (2) + body (3) + 61 arrays = 64.
        let inner = String(repeating: "[", count: 61) + String(repeating: "]", count: 61)
        let json = #"{"client_session_id":"c","authorization_token":null,"requested_services":{"1":{"a":"# + inner + "}}}"
        let m = try SessionMessage.decode(messageBytes(.serviceRequest, json))
        #expect(try SessionMessage.decode(m.encode()) == m)
        let tooDeep = #"{"client_session_id":"c","authorization_token":null,"requested_services":{"1":{"a":["# + inner + "]}}}"
        expectDecodeError(.serviceRequest, tooDeep, .malformedMessage, "nested deeper than 64")
    }

    // MARK: version

    @Test func version() {
        expectDecodeError(.initialRequest, #"{"client_session_id":"c","authorization_token":null,"application_session":null}"#,
                          .malformedMessage, "initial_request: missing field \"v\"")
        expectDecodeError(.initialRequest, #"{"v":2,"client_session_id":"c","authorization_token":null,"application_session":null}"#,
                          .unsupportedVersion, "initial_request: v: version 2 is not supported")
        expectDecodeError(.initialRequest, #"{"v":0}"#, .unsupportedVersion)
        expectDecodeError(.initialRequest, #"{"v":-1}"#, .unsupportedVersion)
        expectDecodeError(.initialRequest, #"{"v":1.5}"#, .unsupportedVersion)
        expectDecodeError(.initialRequest, #"{"v":"1"}"#, .malformedMessage, "initial_request: v: expected integer, got string")
        expectDecodeError(.initialRequest, #"{"v":null}"#, .malformedMessage, "v: expected integer, got null")
        expectDecodeError(.menu, #"{"server_session_id":"s","application_menu":{}}"#, .malformedMessage, "menu: missing field \"v\"")
        expectDecodeError(.menu, #"{"v":3,"server_session_id":"s","application_menu":{}}"#, .unsupportedVersion, "menu: v: version 3")
        // A future version is reported as such even when its other fields differ.
        expectDecodeError(.menu, #"{"v":2,"menu":[]}"#, .unsupportedVersion)
    }

    // MARK: initial_request

    @Test func initialRequestFields() {
        expectDecodeError(.initialRequest, #"{"v":1,"authorization_token":null,"application_session":null}"#,
                          .malformedMessage, "initial_request: missing field \"client_session_id\"")
        expectDecodeError(.initialRequest, #"{"v":1,"client_session_id":"c","application_session":null}"#,
                          .malformedMessage, "initial_request: missing field \"authorization_token\"")
        expectDecodeError(.initialRequest, #"{"v":1,"client_session_id":"c","authorization_token":null}"#,
                          .malformedMessage, "initial_request: missing field \"application_session\"")
        expectDecodeError(.initialRequest, #"{"v":1,"client_session_id":5,"authorization_token":null,"application_session":null}"#,
                          .malformedMessage, "initial_request: client_session_id: expected string, got integer")
        expectDecodeError(.initialRequest, #"{"v":1,"client_session_id":"c","authorization_token":7,"application_session":null}"#,
                          .malformedMessage, "initial_request: authorization_token: expected string or null, got integer")
        expectDecodeError(.initialRequest, #"{"v":1,"client_session_id":"c","authorization_token":"","application_session":null}"#,
                          .malformedMessage, "initial_request: authorization_token: empty token")
        expectDecodeError(.initialRequest, #"{"v":1,"client_session_id":"c","authorization_token":null,"application_session":[]}"#,
                          .malformedMessage, "initial_request: application_session: expected object, got array")
        expectDecodeError(.initialRequest, #"{"v":1,"client_session_id":"c","authorization_token":null,"application_session":null,"extra":1}"#,
                          .malformedMessage, "initial_request: unknown field \"extra\"")
    }

    @Test func sessionIDs() throws {
        func initial(_ id: String) -> [UInt8] {
            messageBytes(.initialRequest, #"{"v":1,"client_session_id":"\#(id)","authorization_token":null,"application_session":null}"#)
        }
        expectDecodeError(initial(""), .malformedMessage, "initial_request: client_session_id: empty session id")
        expectDecodeError(initial(String(repeating: "a", count: 129)), .malformedMessage,
                          "client_session_id: session id is 129 bytes, limit 128")
        expectDecodeError(initial("a\\tb"), .malformedMessage, "client_session_id: session id is not printable ASCII")
        expectDecodeError(initial("caf\\u00e9"), .malformedMessage, "not printable ASCII")
        expectDecodeError(initial("a\\u007fb"), .malformedMessage, "not printable ASCII")
        #expect(throws: Never.self) { try SessionMessage.decode(initial("<some id>")) }
        #expect(throws: Never.self) { try SessionMessage.decode(initial(String(repeating: "a", count: 128))) }

        func menu(_ id: String) -> [UInt8] {
            messageBytes(.menu, #"{"v":1,"server_session_id":"\#(id)","application_menu":{}}"#)
        }
        expectDecodeError(menu(""), .malformedMessage, "menu: server_session_id: empty session id")
        expectDecodeError(menu(String(repeating: "z", count: 129)), .malformedMessage, "menu: server_session_id: session id is 129 bytes")
        expectDecodeError(.applicationSessionReply, #"{"server_session_id":"","error":{"code":"ok","message":""}}"#,
                          .malformedMessage, "application_session_reply: server_session_id: empty session id")
        expectDecodeError(.serviceRequest, #"{"client_session_id":"","authorization_token":null,"requested_services":{}}"#,
                          .malformedMessage, "service_request: client_session_id: empty session id")
        expectDecodeError(.serviceRequest, #"{"authorization_token":null,"requested_services":{}}"#,
                          .malformedMessage, "service_request: missing field \"client_session_id\"")
    }

    @Test func applicationSessionFields() {
        func initial(_ session: String) -> [UInt8] {
            messageBytes(.initialRequest, #"{"v":1,"client_session_id":"c","authorization_token":null,"application_session":\#(session)}"#)
        }
        expectDecodeError(initial(#"{"action":"begin"}"#), .malformedMessage, "initial_request: application_session: missing field \"token\"")
        expectDecodeError(initial(#"{"token":"t"}"#), .malformedMessage, "application_session: missing field \"action\"")
        expectDecodeError(initial(#"{"token":null,"action":"begin"}"#), .malformedMessage, "application_session.token: expected string, got null")
        expectDecodeError(initial(#"{"token":"t","action":""}"#), .malformedMessage, "application_session.action: empty action")
        expectDecodeError(initial(#"{"token":"t","action":"a\nb"}"#), .malformedMessage, "application_session.action: action contains control characters")
        expectDecodeError(initial(#"{"token":"t","action":"begin","client_tcp_stream":-1}"#), .malformedMessage,
                          "application_session.client_tcp_stream: -1 is not a u32")
        expectDecodeError(initial(#"{"token":"t","action":"begin","client_tcp_stream":4294967296}"#), .malformedMessage, "is not a u32")
        expectDecodeError(initial(#"{"token":"t","action":"begin","client_tcp_stream":1.5}"#), .malformedMessage,
                          "client_tcp_stream: expected integer, got number")
        expectDecodeError(initial(#"{"token":"t","action":"begin","client_tcp_stream":"1"}"#), .malformedMessage, "expected integer, got string")
        expectDecodeError(initial(#"{"token":"t","action":"begin","parameters":[]}"#), .malformedMessage,
                          "application_session.parameters: expected object, got array")
        expectDecodeError(initial(#"{"token":"t","action":"begin","client":1}"#), .malformedMessage,
                          "application_session: unknown field \"client\"")
    }

    // MARK: menu

    @Test func menuFields() {
        func menu(_ entries: String) -> [UInt8] {
            messageBytes(.menu, #"{"v":1,"server_session_id":"s","application_menu":\#(entries)}"#)
        }
        expectDecodeError(messageBytes(.menu, #"{"v":1,"server_session_id":"s"}"#), .malformedMessage, "menu: missing field \"application_menu\"")
        expectDecodeError(menu("[]"), .malformedMessage, "menu: application_menu: expected object keyed by index, got array")
        expectDecodeError(menu(#"{"x":{}}"#), .malformedMessage, #"menu: application_menu["x"]: index is not a decimal u32"#)
        expectDecodeError(menu(#"{"0":"password"}"#), .malformedMessage,
                          #"menu: application_menu["0"]: expected array of authentication methods or token-invalidation object, got string"#)
        expectDecodeError(menu(#"{"0":[{"expected_request_body":{}}]}"#), .malformedMessage,
                          #"application_menu["0"][0]: missing field "auth_method""#)
        expectDecodeError(menu(#"{"0":[{"auth_method":"","expected_request_body":{}}]}"#), .malformedMessage,
                          #"application_menu["0"][0].auth_method: empty auth_method"#)
        expectDecodeError(menu(#"{"0":[{"auth_method":"pw"}]}"#), .malformedMessage,
                          #"application_menu["0"][0]: missing field "expected_request_body""#)
        expectDecodeError(menu(#"{"0":[{"auth_method":"pw","expected_request_body":{"user":1}}]}"#), .malformedMessage,
                          #"application_menu["0"][0].expected_request_body["user"]: expected type string, got integer"#)
        expectDecodeError(menu(#"{"0":[1]}"#), .malformedMessage, #"application_menu["0"][0]: expected object, got integer"#)
        expectDecodeError(menu(#"{"0":{"name":"invalidate_tokens","expected_request_body":{}}}"#), .malformedMessage,
                          #"application_menu["0"].expected_request_body: expected array, got object"#)
        expectDecodeError(menu(#"{"0":{"name":"invalidate_tokens","ecpected_request_body":[1]}}"#), .malformedMessage,
                          #"application_menu["0"].ecpected_request_body[0]: expected string, got integer"#)
        expectDecodeError(menu(#"{"1":{"expected_request_body":{}}}"#), .malformedMessage, #"application_menu["1"]: missing field "name""#)
        expectDecodeError(menu(#"{"1":{"name":"","expected_request_body":{}}}"#), .malformedMessage, #"application_menu["1"].name: empty name"#)
        expectDecodeError(menu(#"{"1":{"name":3,"expected_request_body":{}}}"#), .malformedMessage,
                          #"application_menu["1"].name: expected string, got integer"#)
        expectDecodeError(menu(#"{"1":{"name":"echo"}}"#), .malformedMessage, #"application_menu["1"]: missing field "expected_request_body""#)
        expectDecodeError(menu(#"{"1":{"name":"echo","expected_request_body":"message"}}"#), .malformedMessage,
                          #"application_menu["1"].expected_request_body: expected object of field types, got string"#)
        expectDecodeError(menu(#"{"1":{"name":"echo","expected_request_body":{},"ecpected_request_body":{}}}"#), .malformedMessage,
                          #"application_menu["1"]: both "expected_request_body" and its alias"#)
        expectDecodeError(menu(#"{"1":{"name":"echo","description":5,"expected_request_body":{}}}"#), .malformedMessage,
                          #"application_menu["1"].description: expected string, got integer"#)
        expectDecodeError(menu(#"{"1":[]}"#), .malformedMessage, #"application_menu["1"]: expected object, got array"#)
        expectDecodeError(messageBytes(.menu, #"{"v":1,"server_session_id":"s","application_menu":{},"x":1}"#), .malformedMessage,
                          "menu: unknown field \"x\"")
    }

    // MARK: index keys and counts

    @Test(arguments: ["x", "", "01", "00", "-1", "+1", " 1", "1 ", "1.0", "1e2", "0x1", "4294967296", "99999999999", "١"])
    func badIndexKeys(key: String) {
        let body = #"{"\#(key)":{}}"#
        expectDecodeError(.serviceRequest, #"{"client_session_id":"c","authorization_token":null,"requested_services":\#(body)}"#,
                          .malformedMessage, "service_request: requested_services[\"\(key)\"]: index is not a decimal u32")
        expectDecodeError(.serviceReply, #"{"\#(key)":{"token":"t"}}"#,
                          .malformedMessage, "service_reply: [\"\(key)\"]: index is not a decimal u32")
        expectDecodeError(.menu, #"{"v":1,"server_session_id":"s","application_menu":\#(body)}"#,
                          .malformedMessage, "menu: application_menu[\"\(key)\"]: index is not a decimal u32")
    }

    @Test func briefExampleDetail() {
        let e = decodeError(messageBytes(.serviceRequest,
            #"{"client_session_id":"c","authorization_token":null,"requested_services":{"x":{}}}"#))
        #expect(e?.detail == #"service_request: requested_services["x"]: index is not a decimal u32"#)
    }

    @Test func goodIndexKeys() throws {
        let m = try SessionMessage.decode(messageBytes(.serviceReply, #"{"0":{"token":"a"},"4294967295":{"token":"b"},"12":{"token":"c"}}"#))
        #expect(m == .serviceReply(ServiceReply(results: [0: .token("a"), 4_294_967_295: .token("b"), 12: .token("c")])))
    }

    @Test func indexCountLimit() throws {
        func entries(_ n: Int, _ value: String) -> String {
            "{" + (0..<n).map { #""\#($0 + 1)":\#(value)"# }.joined(separator: ",") + "}"
        }
        let request256 = #"{"client_session_id":"c","authorization_token":null,"requested_services":\#(entries(256, "{}"))}"#
        #expect(throws: Never.self) { try SessionMessage.decode(messageBytes(.serviceRequest, request256)) }
        let request257 = #"{"client_session_id":"c","authorization_token":null,"requested_services":\#(entries(257, "{}"))}"#
        expectDecodeError(.serviceRequest, request257, .malformedMessage, "service_request: requested_services: 257 indices, limit 256")
        expectDecodeError(.serviceReply, entries(257, #"{"token":"t"}"#), .malformedMessage, "service_reply: 257 indices, limit 256")
        #expect(throws: Never.self) { try SessionMessage.decode(messageBytes(.serviceReply, entries(256, #"{"token":"t"}"#))) }
        let app = #"{"name":"a","expected_request_body":{}}"#
        expectDecodeError(.menu, #"{"v":1,"server_session_id":"s","application_menu":\#(entries(257, app))}"#,
                          .malformedMessage, "menu: application_menu: 257 indices, limit 256")
    }

    // MARK: service_request

    @Test func serviceRequestFields() {
        func request(_ services: String, token: String = "null") -> [UInt8] {
            messageBytes(.serviceRequest, #"{"client_session_id":"c","authorization_token":\#(token),"requested_services":\#(services)}"#)
        }
        expectDecodeError(messageBytes(.serviceRequest, #"{"client_session_id":"c","authorization_token":null}"#), .malformedMessage,
                          "service_request: missing field \"requested_services\"")
        expectDecodeError(request("[]"), .malformedMessage, "service_request: requested_services: expected object keyed by index, got array")
        expectDecodeError(request(#"{"0":"tok"}"#), .malformedMessage,
                          #"requested_services["0"]: expected object of authentication fields or array of tokens, got string"#)
        expectDecodeError(request(#"{"0":["t1",2]}"#), .malformedMessage, #"requested_services["0"][1]: expected token string, got integer"#)
        expectDecodeError(request(#"{"0":["t1",""]}"#), .malformedMessage, #"requested_services["0"][1]: empty token"#)
        expectDecodeError(request(#"{"1":["a"]}"#), .malformedMessage, #"requested_services["1"]: expected object (request body), got array"#)
        expectDecodeError(request(#"{"1":null}"#), .malformedMessage, #"requested_services["1"]: expected object (request body), got null"#)
        expectDecodeError(request("{}", token: "[]"), .malformedMessage, "service_request: authorization_token: expected string or null, got array")
        expectDecodeError(request("{}", token: "\"" + String(repeating: "t", count: 1025) + "\""), .malformedMessage,
                          "authorization_token: token is 1025 bytes, limit 1024")
        expectDecodeError(request("{}", token: #""a\tb""#), .malformedMessage, "authorization_token: token is not printable ASCII")
    }

    // MARK: service_reply

    @Test func serviceReplyFields() {
        expectDecodeError(.serviceReply, #"{"1":{}}"#, .malformedMessage,
                          #"service_reply: ["1"]: expected exactly one of "token", "error", "invalidated", got 0 fields"#)
        expectDecodeError(.serviceReply, #"{"1":{"token":"a","error":{"code":"ok","message":""}}}"#, .malformedMessage, "got 2 fields")
        expectDecodeError(.serviceReply, #"{"1":{"tok":"a"}}"#, .malformedMessage, #"service_reply: ["1"]: unknown field "tok""#)
        expectDecodeError(.serviceReply, #"{"1":"a"}"#, .malformedMessage, #"service_reply: ["1"]: expected object, got string"#)
        expectDecodeError(.serviceReply, #"{"1":{"token":1}}"#, .malformedMessage, #"["1"].token: expected string, got integer"#)
        expectDecodeError(.serviceReply, #"{"1":{"token":""}}"#, .malformedMessage, #"["1"].token: empty token"#)
        expectDecodeError(.serviceReply, #"{"1":{"invalidated":2}}"#, .malformedMessage, #"["1"].invalidated: only index 0"#)
        expectDecodeError(.serviceReply, #"{"0":{"invalidated":-2}}"#, .malformedMessage, #"["0"].invalidated: -2 is not a u32"#)
        expectDecodeError(.serviceReply, #"{"0":{"invalidated":"2"}}"#, .malformedMessage, #"["0"].invalidated: expected integer, got string"#)
        expectDecodeError(.serviceReply, #"{"5":{"error":{"message":"x"}}}"#, .malformedMessage, #"service_reply: ["5"].error: missing field "code""#)
        expectDecodeError(.serviceReply, #"{"5":{"error":{"code":"ok"}}}"#, .malformedMessage, #"["5"].error: missing field "message""#)
        expectDecodeError(.serviceReply, #"{"5":{"error":"nope"}}"#, .malformedMessage, #"["5"].error: expected object, got string"#)
        expectDecodeError(.serviceReply, #"{"5":{"error":{"code":"Bad Code","message":"x"}}}"#, .malformedMessage,
                          #"["5"].error.code: invalid code name "Bad Code""#)
        expectDecodeError(.serviceReply, #"{"5":{"error":{"code":"","message":"x"}}}"#, .malformedMessage, "invalid code name")
        expectDecodeError(.serviceReply, #"{"5":{"error":{"code":"ok","message":"x","detail":"y"}}}"#, .malformedMessage,
                          #"["5"].error: unknown field "detail""#)
    }

    // MARK: application_session_reply and error

    @Test func applicationSessionReplyFields() {
        func reply(_ rest: String) -> [UInt8] { messageBytes(.applicationSessionReply, #"{"server_session_id":"s"\#(rest)}"#) }
        expectDecodeError(reply(""), .malformedMessage, #"application_session_reply: missing field "application_session" or "error""#)
        expectDecodeError(reply(#","application_session":{"action":"end"},"error":{"code":"ok","message":""}"#), .malformedMessage,
                          #"application_session_reply: both "application_session" and "error""#)
        expectDecodeError(reply(#","application_session":{"action":"begin","client_tcp_stream":1}"#), .malformedMessage,
                          #"application_session_reply: application_session: missing field "server_tcp_stream" for action "begin""#)
        expectDecodeError(reply(#","application_session":{"client_tcp_stream":1}"#), .malformedMessage,
                          #"application_session: missing field "action""#)
        expectDecodeError(reply(#","application_session":{"action":"x","result":1}"#), .malformedMessage,
                          "application_session.result: expected object, got integer")
        expectDecodeError(reply(#","application_session":{"action":"begin","server_tcp_stream":4294967296}"#), .malformedMessage,
                          "application_session.server_tcp_stream: 4294967296 is not a u32")
        expectDecodeError(reply(#","application_session":null"#), .malformedMessage,
                          "application_session_reply: application_session: expected object, got null")
        expectDecodeError(reply(#","error":{"code":"ok","message":""},"x":0"#), .malformedMessage,
                          #"application_session_reply: unknown field "x""#)
        expectDecodeError(messageBytes(.applicationSessionReply, #"{"error":{"code":"ok","message":""}}"#), .malformedMessage,
                          #"application_session_reply: missing field "server_session_id""#)
    }

    @Test func errorMessageFields() {
        expectDecodeError(.error, "{}", .malformedMessage, #"error: missing field "error""#)
        expectDecodeError(.error, #"{"error":null}"#, .malformedMessage, "error: error: expected object, got null")
        expectDecodeError(.error, #"{"error":{"code":"ok","message":1}}"#, .malformedMessage, "error: error.message: expected string, got integer")
        expectDecodeError(.error, #"{"error":{"code":"ok","message":""},"v":1}"#, .malformedMessage, #"error: unknown field "v""#)
    }

    @Test func peerStringsInDetailsAreEscapedAndShort() {
        let key = "a\nb\"" + String(repeating: "x", count: 100)
        let json = #"{"error":{"code":"ok","message":""},"\#(key.replacingNewlines())":1}"#
        guard let e = decodeError(messageBytes(.error, json)) else { return }
        #expect(!e.detail.contains("\n"))
        #expect(e.detail.contains(#"\u{a}b\""#))
        #expect(e.detail.count < 120)
    }
}

private extension String {
    func replacingNewlines() -> String {
        var out = ""
        for c in self {
            switch c {
            case "\n": out += "\\n"
            case "\"": out += "\\\""
            default: out.append(c)
            }
        }
        return out
    }
}
