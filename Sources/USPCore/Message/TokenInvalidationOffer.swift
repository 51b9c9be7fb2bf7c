/// The menu's index-0 object after login: an offer to invalidate tokens.
///
///     {"name":"invalidate_tokens","expected_request_body":["<token>"]}
///
/// A request for it sends an array of tokens as `requested_services["0"]`.
public struct TokenInvalidationOffer: Hashable, Sendable {
    /// Human-readable name, non-empty.
    public var name: String
    /// A sample of the expected body: an array of token placeholders.
    public var expectedRequestBody: [String]
    /// Fields beyond `name` and `expected_request_body`, kept as they came.
    public var extra: [String: JSONValue]

    public init(name: String = "invalidate_tokens", expectedRequestBody: [String] = ["<token>"],
                extra: [String: JSONValue] = [:]) {
        self.name = name
        self.expectedRequestBody = expectedRequestBody
        self.extra = extra
    }

    static let reservedKeys = [MessageKeys.name, MessageKeys.expectedRequestBody, MessageKeys.expectedRequestBodyTypo]
}

extension TokenInvalidationOffer {
    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        var r = try FieldReader(json, path)
        name = try r.requiredString(MessageKeys.name)
        try checkNonEmpty(name, "name", path.field(MessageKeys.name))
        let (body, bodyPath) = try r.takeExpectedRequestBody()
        guard case .array(let elements) = body else { throw bodyPath.wrongType("array", body) }
        var sample: [String] = []
        for (n, e) in elements.enumerated() {
            guard case .string(let s) = e else { throw bodyPath.element(n).wrongType("string", e) }
            sample.append(s)
        }
        expectedRequestBody = sample
        extra = r.fields
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        try checkNonEmpty(name, "name", path.field(MessageKeys.name))
        try checkExtra(extra, reserved: Self.reservedKeys, path)
        var o = extra
        o[MessageKeys.name] = .string(name)
        o[MessageKeys.expectedRequestBody] = .array(expectedRequestBody.map(JSONValue.string))
        return .object(o)
    }
}
