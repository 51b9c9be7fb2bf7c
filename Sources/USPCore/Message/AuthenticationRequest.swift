/// What a `service_request` carries at index 0.
public enum AuthenticationRequest: Hashable, Sendable {
    /// Start authentication: the fields the chosen method's `expected_request_body` names
    /// (a JSON object).
    case credentials([String: JSONValue])
    /// Invalidate these tokens (a JSON array of strings).
    case invalidateTokens([String])
}

extension AuthenticationRequest {
    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        switch json {
        case .object(let o):
            self = .credentials(o)
        case .array(let elements):
            var tokens: [String] = []
            tokens.reserveCapacity(elements.count)
            for (n, e) in elements.enumerated() {
                guard case .string(let t) = e else { throw path.element(n).wrongType("token string", e) }
                try checkToken(t, path.element(n))
                tokens.append(t)
            }
            self = .invalidateTokens(tokens)
        default:
            throw path.wrongType("object of authentication fields or array of tokens", json)
        }
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        switch self {
        case .credentials(let o):
            return .object(o)
        case .invalidateTokens(let tokens):
            for (n, t) in tokens.enumerated() { try checkToken(t, path.element(n)) }
            return .array(tokens.map(JSONValue.string))
        }
    }
}
