/// Message kind 1, client → server, the first message of a session (proposal §3):
///
///     {"v":1,"client_session_id":"<id>","authorization_token":null|"<tok>",
///      "application_session":null|{"token":"<tok>","action":"begin", …}}
///
/// With `application_session` null the server answers with a `menu` (authenticated when the
/// authorization token is valid); otherwise it acts on the application token and answers with
/// an `application_session_reply`. All three fields are required on the wire; nil is `null`.
public struct InitialRequest: Hashable, Sendable {
    public var clientSessionID: String
    public var authorizationToken: String?
    public var applicationSession: ApplicationSessionRequest?

    public init(
        clientSessionID: String, authorizationToken: String? = nil,
        applicationSession: ApplicationSessionRequest? = nil
    ) {
        self.clientSessionID = clientSessionID
        self.authorizationToken = authorizationToken
        self.applicationSession = applicationSession
    }
}

extension InitialRequest: SessionMessageBody {
    static let kind = SessionMessage.Kind.initialRequest

    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        var r = try FieldReader(json, path)
        try readVersion(&r)
        clientSessionID = try r.requiredString(MessageKeys.clientSessionID)
        try checkSessionID(clientSessionID, path.field(MessageKeys.clientSessionID))
        authorizationToken = try r.requiredNullableString(MessageKeys.authorizationToken)
        if let t = authorizationToken { try checkToken(t, path.field(MessageKeys.authorizationToken)) }
        let session = try r.required(MessageKeys.applicationSession)
        applicationSession = session.isNull
            ? nil : try ApplicationSessionRequest(json: session, path.field(MessageKeys.applicationSession))
        try r.rejectUnknown()
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        try checkSessionID(clientSessionID, path.field(MessageKeys.clientSessionID))
        if let t = authorizationToken { try checkToken(t, path.field(MessageKeys.authorizationToken)) }
        return .object([
            MessageKeys.version: .integer(SessionMessage.version),
            MessageKeys.clientSessionID: .string(clientSessionID),
            MessageKeys.authorizationToken: authorizationToken.map(JSONValue.string) ?? .null,
            MessageKeys.applicationSession: try applicationSession?.toJSON(path.field(MessageKeys.applicationSession)) ?? .null,
        ])
    }
}
