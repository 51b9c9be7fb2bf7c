/// Takes the fields of one JSON object out one by one with typed checks, so a decoder can
/// finally reject (or keep) whatever it did not take. Every failure names the path.
struct FieldReader {
    private(set) var fields: [String: JSONValue]
    let path: MessagePath

    init(_ value: JSONValue, _ path: MessagePath) throws(USPError) {
        guard case .object(let o) = value else {
            throw path.location.isEmpty
                ? path.malformed("expected JSON object, got \(value.typeName)")
                : path.wrongType("object", value)
        }
        self.fields = o
        self.path = path
    }

    /// Whether the field is present (null included) and not taken yet.
    func contains(_ key: String) -> Bool { fields[key] != nil }

    /// The field, or nil when it is absent.
    mutating func take(_ key: String) -> JSONValue? {
        fields.removeValue(forKey: key)
    }

    /// The field, or nil when it is absent or null.
    mutating func takeNonNull(_ key: String) -> JSONValue? {
        guard let v = take(key), !v.isNull else { return nil }
        return v
    }

    mutating func required(_ key: String) throws(USPError) -> JSONValue {
        guard let v = take(key) else { throw path.malformed("missing field \"\(key)\"") }
        return v
    }

    mutating func requiredString(_ key: String) throws(USPError) -> String {
        let v = try required(key)
        guard case .string(let s) = v else { throw path.field(key).wrongType("string", v) }
        return s
    }

    /// A field that must be present but may be null.
    mutating func requiredNullableString(_ key: String) throws(USPError) -> String? {
        let v = try required(key)
        switch v {
        case .null: return nil
        case .string(let s): return s
        default: throw path.field(key).wrongType("string or null", v)
        }
    }

    mutating func optionalString(_ key: String) throws(USPError) -> String? {
        guard let v = takeNonNull(key) else { return nil }
        guard case .string(let s) = v else { throw path.field(key).wrongType("string", v) }
        return s
    }

    mutating func optionalUInt32(_ key: String) throws(USPError) -> UInt32? {
        guard let v = takeNonNull(key) else { return nil }
        return try uint32(v, path.field(key))
    }

    mutating func requiredObject(_ key: String) throws(USPError) -> [String: JSONValue] {
        let v = try required(key)
        guard case .object(let o) = v else { throw path.field(key).wrongType("object", v) }
        return o
    }

    mutating func optionalObject(_ key: String) throws(USPError) -> [String: JSONValue]? {
        guard let v = takeNonNull(key) else { return nil }
        guard case .object(let o) = v else { throw path.field(key).wrongType("object", v) }
        return o
    }

    /// `expected_request_body`, also accepted under the proposal's typo `ecpected_request_body`.
    mutating func takeExpectedRequestBody() throws(USPError) -> (JSONValue, MessagePath) {
        let fixed = take(MessageKeys.expectedRequestBody)
        let typo = take(MessageKeys.expectedRequestBodyTypo)
        switch (fixed, typo) {
        case (let v?, nil): return (v, path.field(MessageKeys.expectedRequestBody))
        case (nil, let v?): return (v, path.field(MessageKeys.expectedRequestBodyTypo))
        case (_?, _?):
            throw path.malformed("both \"expected_request_body\" and its alias \"ecpected_request_body\"")
        case (nil, nil): throw path.malformed("missing field \"expected_request_body\"")
        }
    }

    /// Fails on the first (in sorted order) field that was not taken.
    func rejectUnknown() throws(USPError) {
        if let key = fields.keys.min(by: JSONTextWriter.keyOrder) {
            throw path.malformed("unknown field \(detailQuoted(key))")
        }
    }
}

func uint32(_ v: JSONValue, _ path: MessagePath) throws(USPError) -> UInt32 {
    guard case .integer(let i) = v else { throw path.wrongType("integer", v) }
    guard let u = UInt32(exactly: i) else { throw path.malformed("\(i) is not a u32") }
    return u
}

/// JSON field names used by the session messages, spelled once.
enum MessageKeys {
    static let version = "v"
    static let clientSessionID = "client_session_id"
    static let serverSessionID = "server_session_id"
    static let authorizationToken = "authorization_token"
    static let applicationSession = "application_session"
    static let token = "token"
    static let application = "application"
    static let request = "request"
    static let tokenID = "token_id"
    static let action = "action"
    static let clientTCPStream = "client_tcp_stream"
    static let serverTCPStream = "server_tcp_stream"
    static let parameters = "parameters"
    static let result = "result"
    static let applicationMenu = "application_menu"
    static let authMethod = "auth_method"
    static let name = "name"
    static let description = "description"
    static let expectedRequestBody = "expected_request_body"
    static let expectedRequestBodyTypo = "ecpected_request_body"
    static let requestedServices = "requested_services"
    static let error = "error"
    static let code = "code"
    static let message = "message"
    static let invalidated = "invalidated"
    static let clientIP = "client_ip"
}
