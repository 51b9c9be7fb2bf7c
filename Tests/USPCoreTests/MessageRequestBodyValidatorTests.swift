import Testing
import USPCore

@Suite struct MessageRequestBodyValidatorTests {
    static let spec: [String: String] = [
        "host": "string", "port": "integer", "ratio": "number", "tls": "boolean",
        "options": "object", "tags": "array", "note": "string?", "anything": "",
    ]

    static let good: [String: JSONValue] = [
        "host": "example", "port": 22, "ratio": 0.5, "tls": true, "options": [:], "tags": ["a"], "anything": nil,
    ]

    @Test func acceptsAMatchingBody() {
        #expect(RequestBodyValidator.validate(Self.good, against: Self.spec) == nil)
        var withNote = Self.good
        withNote["note"] = "hello"
        #expect(RequestBodyValidator.validate(withNote, against: Self.spec) == nil)
        withNote["note"] = nil
        #expect(RequestBodyValidator.validate(withNote, against: Self.spec) == nil)
        // An optional field may be null.
        withNote["note"] = .null
        #expect(RequestBodyValidator.validate(withNote, against: Self.spec) == nil)
        // "number" accepts integers.
        var intRatio = Self.good
        intRatio["ratio"] = 1
        #expect(RequestBodyValidator.validate(intRatio, against: Self.spec) == nil)
        #expect(RequestBodyValidator.validate([:], against: [:]) == nil)
        #expect(RequestBodyValidator.validate(JSONValue.object(Self.good), against: Self.spec) == nil)
    }

    @Test func wrongType() {
        var body = Self.good
        body["port"] = "22"
        let e = RequestBodyValidator.validate(body, against: Self.spec)
        #expect(e?.code == .invalidRequestBody)
        #expect(e?.detail == #"field "port": expected integer, got string"#)

        body = Self.good
        body["port"] = 22.0
        #expect(RequestBodyValidator.validate(body, against: Self.spec)?.detail == #"field "port": expected integer, got number"#)
        body = Self.good
        body["tls"] = 1
        #expect(RequestBodyValidator.validate(body, against: Self.spec)?.detail == #"field "tls": expected boolean, got integer"#)
        body = Self.good
        body["host"] = nil
        body["host"] = .null
        #expect(RequestBodyValidator.validate(body, against: Self.spec)?.detail == #"field "host": expected string, got null"#)
        body = Self.good
        body["note"] = 5
        #expect(RequestBodyValidator.validate(body, against: Self.spec)?.detail == #"field "note": expected string, got integer"#)
        body = Self.good
        body["options"] = []
        #expect(RequestBodyValidator.validate(body, against: Self.spec)?.detail == #"field "options": expected object, got array"#)
        body = Self.good
        body["tags"] = [:]
        #expect(RequestBodyValidator.validate(body, against: Self.spec)?.detail == #"field "tags": expected array, got object"#)
    }

    @Test func missingRequiredField() {
        var body = Self.good
        body["host"] = nil
        let e = RequestBodyValidator.validate(body, against: Self.spec)
        #expect(e?.code == .invalidRequestBody)
        #expect(e?.detail == #"field "host": missing, expected string"#)
        // "" (any) is required too.
        body = Self.good
        body["anything"] = nil
        #expect(RequestBodyValidator.validate(body, against: Self.spec)?.detail == #"field "anything": missing, expected any"#)
    }

    @Test func unknownExtraField() {
        var body = Self.good
        body["user"] = "root"
        let e = RequestBodyValidator.validate(body, against: Self.spec)
        #expect(e?.code == .invalidRequestBody)
        #expect(e?.detail == #"field "user": not in expected_request_body"#)
    }

    @Test func firstErrorInSortedOrder() {
        let e = RequestBodyValidator.validate(["z": 1, "b": 1, "a": 1], against: ["a": "string", "b": "string"])
        #expect(e?.detail == #"field "a": expected string, got integer"#)
        // Spec problems come before extra fields.
        let e2 = RequestBodyValidator.validate(["a": "x", "0": 1], against: ["a": "string", "b": "string"])
        #expect(e2?.detail == #"field "b": missing, expected string"#)
    }

    @Test func nonObjectBody() {
        let e = RequestBodyValidator.validate(JSONValue.array([]), against: [:])
        #expect(e?.code == .invalidRequestBody)
        #expect(e?.detail == "request body: expected object, got array")
    }

    @Test func invalidSpec() {
        let e = RequestBodyValidator.validate(["a": 1], against: ["a": "int"])
        #expect(e?.code == .invalidRequestBody)
        #expect(e?.detail == #"expected_request_body: field "a": unknown type "int""#)
        #expect(RequestBodyValidator.validate([:], against: ["a": "string??"]) != nil)
        #expect(RequestBodyValidator.validate([:], against: ["a": "String"]) != nil)
        guard case .failure = RequestBodyValidator.parse(["a": "float"]) else {
            Issue.record("float is not a type")
            return
        }
    }

    @Test func fieldSpecParsing() {
        #expect(RequestBodyValidator.FieldSpec("string") == .init(type: .string))
        #expect(RequestBodyValidator.FieldSpec("integer?") == .init(type: .integer, isOptional: true))
        #expect(RequestBodyValidator.FieldSpec("") == .init(type: .any))
        #expect(RequestBodyValidator.FieldSpec("?") == .init(type: .any, isOptional: true))
        #expect(RequestBodyValidator.FieldSpec("any") == .init(type: .any))
        #expect(RequestBodyValidator.FieldSpec("?string") == nil)
        for type in RequestBodyValidator.FieldType.allCases {
            #expect(RequestBodyValidator.FieldSpec(type.rawValue)?.type == type)
            #expect(RequestBodyValidator.FieldSpec(type.rawValue + "?")?.isOptional == true)
        }
    }

    /// A menu's spec checks a service request's body end to end.
    @Test func menuSpecChecksRequestBody() throws {
        let menu = try SessionMessage.decode(messageBytes(.menu,
            #"{"v":1,"server_session_id":"s","application_menu":{"1":{"name":"echo","ecpected_request_body":{"message":"string","repeat":"integer?"}}}}"#))
        let request = try SessionMessage.decode(messageBytes(.serviceRequest,
            #"{"client_session_id":"c","authorization_token":null,"requested_services":{"1":{"message":"hi","repeat":"3"}}}"#))
        guard case .menu(let m) = menu, case .serviceRequest(let r) = request,
              let spec = m.applications[1]?.expectedRequestBody, let body = r.services[1]
        else {
            Issue.record("unexpected messages")
            return
        }
        #expect(RequestBodyValidator.validate(body, against: spec)?.detail == #"field "repeat": expected integer, got string"#)
    }
}
