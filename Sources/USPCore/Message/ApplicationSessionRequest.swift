/// The `application_session` object of an `initial_request`: use an application token.
///
/// `{"token":"<tok>","action":"begin","client_tcp_stream":3,"parameters":{…}}` — the last two
/// are optional and omitted when nil.
public struct ApplicationSessionRequest: Hashable, Sendable {
    /// The application token from a `service_reply`.
    public var token: String
    public var action: ApplicationAction
    /// The client's stream for the application session, when it names one.
    public var clientTCPStream: UInt32?
    /// Application-defined parameters for the action.
    public var parameters: [String: JSONValue]?

    public init(
        token: String, action: ApplicationAction, clientTCPStream: UInt32? = nil,
        parameters: [String: JSONValue]? = nil
    ) {
        self.token = token
        self.action = action
        self.clientTCPStream = clientTCPStream
        self.parameters = parameters
    }
}

extension ApplicationSessionRequest {
    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        var r = try FieldReader(json, path)
        token = try r.requiredString(MessageKeys.token)
        try checkToken(token, path.field(MessageKeys.token))
        let action = try r.requiredString(MessageKeys.action)
        try ApplicationAction.check(action, path.field(MessageKeys.action))
        self.action = ApplicationAction(action)
        clientTCPStream = try r.optionalUInt32(MessageKeys.clientTCPStream)
        parameters = try r.optionalObject(MessageKeys.parameters)
        try r.rejectUnknown()
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        try checkToken(token, path.field(MessageKeys.token))
        try ApplicationAction.check(action.rawValue, path.field(MessageKeys.action))
        var o: [String: JSONValue] = [
            MessageKeys.token: .string(token),
            MessageKeys.action: .string(action.rawValue),
        ]
        if let s = clientTCPStream { o[MessageKeys.clientTCPStream] = .integer(Int64(s)) }
        if let p = parameters { o[MessageKeys.parameters] = .object(p) }
        return .object(o)
    }
}
