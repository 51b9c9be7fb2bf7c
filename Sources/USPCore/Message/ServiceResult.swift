/// The outcome for one index of a `service_reply`: a JSON object with exactly one field.
public enum ServiceResult: Hashable, Sendable {
    /// `{"token":"<tok>"}`: at index 0 the authorization token, elsewhere an application token
    /// for the client's next `initial_request`.
    case token(String)
    /// `{"error":{"code":"…","message":"…"}}`.
    case error(WireError)
    /// `{"invalidated":<count>}`: how many tokens an index-0 invalidation request invalidated.
    /// Only valid at index 0.
    case invalidated(UInt32)
}

extension ServiceResult {
    init(json: JSONValue, index: ServiceIndex, _ path: MessagePath) throws(USPError) {
        guard case .object(let o) = json else { throw path.wrongType("object", json) }
        guard o.count == 1, let (key, value) = o.first.map({ ($0.key, $0.value) }) else {
            throw path.malformed("expected exactly one of \"token\", \"error\", \"invalidated\", got \(o.count) fields")
        }
        let fieldPath = path.field(key)
        switch key {
        case MessageKeys.token:
            guard case .string(let t) = value else { throw fieldPath.wrongType("string", value) }
            try checkToken(t, fieldPath)
            self = .token(t)
        case MessageKeys.error:
            self = .error(try WireError(json: value, fieldPath))
        case MessageKeys.invalidated:
            guard index.isAuthentication else { throw fieldPath.malformed("only index 0 can report invalidated tokens") }
            self = .invalidated(try uint32(value, fieldPath))
        default:
            throw path.malformed("unknown field \(detailQuoted(key)), expected \"token\", \"error\" or \"invalidated\"")
        }
    }

    func toJSON(index: ServiceIndex, _ path: MessagePath) throws(USPError) -> JSONValue {
        switch self {
        case .token(let t):
            try checkToken(t, path.field(MessageKeys.token))
            return .object([MessageKeys.token: .string(t)])
        case .error(let e):
            return .object([MessageKeys.error: try e.toJSON(path.field(MessageKeys.error))])
        case .invalidated(let n):
            guard index.isAuthentication else {
                throw path.field(MessageKeys.invalidated).malformed("only index 0 can report invalidated tokens")
            }
            return .object([MessageKeys.invalidated: .integer(Int64(n))])
        }
    }
}
