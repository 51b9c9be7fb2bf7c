/// What the menu offers at index 0.
public enum AuthenticationOffer: Hashable, Sendable {
    /// Before login: a JSON array of authentication methods with their parameters.
    case methods([AuthenticationMethod])
    /// After login: a JSON object offering to invalidate tokens.
    case tokenInvalidation(TokenInvalidationOffer)
}

extension AuthenticationOffer {
    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        switch json {
        case .array(let elements):
            var methods: [AuthenticationMethod] = []
            methods.reserveCapacity(elements.count)
            for (n, e) in elements.enumerated() {
                methods.append(try AuthenticationMethod(json: e, path.element(n)))
            }
            self = .methods(methods)
        case .object:
            self = .tokenInvalidation(try TokenInvalidationOffer(json: json, path))
        default:
            throw path.wrongType("array of authentication methods or token-invalidation object", json)
        }
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        switch self {
        case .methods(let methods):
            var out: [JSONValue] = []
            out.reserveCapacity(methods.count)
            for (n, m) in methods.enumerated() { out.append(try m.toJSON(path.element(n))) }
            return .array(out)
        case .tokenInvalidation(let offer):
            return try offer.toJSON(path)
        }
    }
}
