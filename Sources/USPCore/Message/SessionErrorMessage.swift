/// Message kind 6, server → client: the session failed; the server closes after sending it.
///
///     {"error":{"code":"authorization_token_invalid","message":"Authorization token invalid"}}
public struct SessionErrorMessage: Hashable, Sendable {
    public var error: WireError

    public init(_ error: WireError) {
        self.error = error
    }

    public init(_ code: USPError.Code, _ message: String? = nil) {
        self.error = WireError(code, message)
    }
}

extension SessionErrorMessage: SessionMessageBody {
    static let kind = SessionMessage.Kind.error

    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        var r = try FieldReader(json, path)
        error = try WireError(json: try r.required(MessageKeys.error), path.field(MessageKeys.error))
        try r.rejectUnknown()
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        .object([MessageKeys.error: try error.toJSON(path.field(MessageKeys.error))])
    }
}
