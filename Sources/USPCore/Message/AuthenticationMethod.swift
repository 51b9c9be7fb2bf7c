/// One element of the menu's index-0 array before login: an authentication method and the
/// fields a request for it must carry.
///
///     {"auth_method":"password","expected_request_body":{"user":"string","password":"string"}, …}
///
/// Other fields (the proposal's "auth_field1" and so on) are kept in `extra`.
public struct AuthenticationMethod: Hashable, Sendable {
    /// The method's name or id, non-empty.
    public var method: String
    /// Field name → type string, as `RequestBodyValidator` reads it.
    public var expectedRequestBody: [String: String]
    /// Fields beyond `auth_method` and `expected_request_body`, kept as they came.
    public var extra: [String: JSONValue]

    public init(method: String, expectedRequestBody: [String: String], extra: [String: JSONValue] = [:]) {
        self.method = method
        self.expectedRequestBody = expectedRequestBody
        self.extra = extra
    }

    static let reservedKeys = [MessageKeys.authMethod, MessageKeys.expectedRequestBody, MessageKeys.expectedRequestBodyTypo]
}

extension AuthenticationMethod {
    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        var r = try FieldReader(json, path)
        method = try r.requiredString(MessageKeys.authMethod)
        try checkNonEmpty(method, "auth_method", path.field(MessageKeys.authMethod))
        let (body, bodyPath) = try r.takeExpectedRequestBody()
        expectedRequestBody = try RequestBodySpecCoding.decode(body, bodyPath)
        extra = r.fields
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        try checkNonEmpty(method, "auth_method", path.field(MessageKeys.authMethod))
        try checkExtra(extra, reserved: Self.reservedKeys, path)
        var o = extra
        o[MessageKeys.authMethod] = .string(method)
        o[MessageKeys.expectedRequestBody] = RequestBodySpecCoding.encode(expectedRequestBody)
        return .object(o)
    }
}
