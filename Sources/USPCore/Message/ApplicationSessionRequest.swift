/// The `application_session` object of an `initial_request`, and the body of an OPEN frame:
/// begin (or act on) an application session.
///
/// Two forms, exclusive:
/// - with an application token from a `service_reply` (the proposal's form):
///   `{"token":"<tok>","action":"begin","client_tcp_stream":3,"parameters":{…}}`;
/// - **by name** (begin only): `{"application":"echo","request":{…},"action":"begin","client_tcp_stream":1}`.
///   The server looks the name up on the menu of the caller (the `initial_request`'s
///   authorization token, or the session's login), checks `request` against the application's
///   `expected_request_body`, has policy issue an application token exactly as for a
///   `service_request`, and begins with it — one message instead of a round trip for the token
///   (docs/PROTOCOL.md §6.1).
///
/// Optional fields are omitted when nil.
public struct ApplicationSessionRequest: Hashable, Sendable {
    /// The application token presentation (`usp1p.…`, or the secret before the client session
    /// presents it); nil for the by-name form.
    public var token: String?
    /// The application's name, for the by-name form.
    public var application: String?
    /// The request body for the by-name form (`{}` when nil).
    public var request: [String: JSONValue]?
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

    /// The by-name form: begin `application` with `request`.
    public init(application: String, request: [String: JSONValue] = [:], clientTCPStream: UInt32? = nil) {
        self.application = application
        self.request = request
        self.action = .begin
        self.clientTCPStream = clientTCPStream
    }
}

extension ApplicationSessionRequest {
    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        var r = try FieldReader(json, path)
        let hasToken = r.contains(MessageKeys.token)
        if hasToken || !r.contains(MessageKeys.application) {
            token = try r.requiredString(MessageKeys.token)
            try checkToken(token!, path.field(MessageKeys.token))
        }
        application = try r.optionalString(MessageKeys.application)
        request = try r.optionalObject(MessageKeys.request)
        // By name without a body: `{}`, as `toJSON` writes it, so a decoded request re-encodes unchanged.
        if application != nil, request == nil { request = [:] }
        let action = try r.requiredString(MessageKeys.action)
        try ApplicationAction.check(action, path.field(MessageKeys.action))
        self.action = ApplicationAction(action)
        clientTCPStream = try r.optionalUInt32(MessageKeys.clientTCPStream)
        parameters = try r.optionalObject(MessageKeys.parameters)
        try r.rejectUnknown()
        try checkForm(path)
    }

    private func checkForm(_ path: MessagePath) throws(USPError) {
        if let name = application {
            if token != nil { throw path.malformed("\"token\" and \"application\" exclude each other") }
            try checkApplicationName(name, path.field(MessageKeys.application))
            if action != .begin { throw path.malformed("\"application\" (begin by name) is only for action \"begin\"") }
        } else if request != nil {
            throw path.malformed("\"request\" goes only with \"application\"")
        }
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        if let t = token { try checkToken(t, path.field(MessageKeys.token)) }
        else if application == nil { throw path.malformed("missing field \"token\"") }
        try ApplicationAction.check(action.rawValue, path.field(MessageKeys.action))
        try checkForm(path)
        var o: [String: JSONValue] = [MessageKeys.action: .string(action.rawValue)]
        if let t = token { o[MessageKeys.token] = .string(t) }
        if let a = application {
            o[MessageKeys.application] = .string(a)
            o[MessageKeys.request] = .object(request ?? [:])
        }
        if let s = clientTCPStream { o[MessageKeys.clientTCPStream] = .integer(Int64(s)) }
        if let p = parameters { o[MessageKeys.parameters] = .object(p) }
        return .object(o)
    }
}
