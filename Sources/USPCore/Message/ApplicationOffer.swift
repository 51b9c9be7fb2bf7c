/// A menu entry at index 1 or above: an application the client may request.
///
///     {"name":"echo","description":"…","expected_request_body":{"message":"string"}, …}
///
/// `name` and `expected_request_body` are required; other fields (the proposal's
/// "application_field1" and so on) are kept in `extra`.
public struct ApplicationOffer: Hashable, Sendable {
    /// Human-readable name, non-empty.
    public var name: String
    /// Optional human-readable description.
    public var description: String?
    /// Field name → type string, as `RequestBodyValidator` reads it.
    public var expectedRequestBody: [String: String]
    /// Fields beyond `name`, `description` and `expected_request_body`, kept as they came.
    public var extra: [String: JSONValue]

    public init(name: String, description: String? = nil, expectedRequestBody: [String: String],
                extra: [String: JSONValue] = [:]) {
        self.name = name
        self.description = description
        self.expectedRequestBody = expectedRequestBody
        self.extra = extra
    }

    static let reservedKeys = [
        MessageKeys.name, MessageKeys.description, MessageKeys.expectedRequestBody, MessageKeys.expectedRequestBodyTypo,
    ]
}

extension ApplicationOffer {
    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        var r = try FieldReader(json, path)
        name = try r.requiredString(MessageKeys.name)
        try checkNonEmpty(name, "name", path.field(MessageKeys.name))
        description = try r.optionalString(MessageKeys.description)
        let (body, bodyPath) = try r.takeExpectedRequestBody()
        expectedRequestBody = try RequestBodySpecCoding.decode(body, bodyPath)
        extra = r.fields
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        try checkNonEmpty(name, "name", path.field(MessageKeys.name))
        try checkExtra(extra, reserved: Self.reservedKeys, path)
        var o = extra
        o[MessageKeys.name] = .string(name)
        if let d = description { o[MessageKeys.description] = .string(d) }
        o[MessageKeys.expectedRequestBody] = RequestBodySpecCoding.encode(expectedRequestBody)
        return .object(o)
    }
}
