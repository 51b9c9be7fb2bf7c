/// Message kind 5, server → client: the answer to an `initial_request` that carried an
/// application session (proposal §4.b).
///
///     {"server_session_id":"<id>","application_session":{"action":"begin","client_tcp_stream":1,"server_tcp_stream":7}}
///     {"server_session_id":"<id>","error":{"code":"token_invalid","message":"Token invalid"}}
///
/// Exactly one of `application_session` and `error` is present.
public struct ApplicationSessionReply: Hashable, Sendable {
    public enum Outcome: Hashable, Sendable {
        case session(ApplicationSessionResult)
        case error(WireError)
    }

    public var serverSessionID: String
    public var outcome: Outcome

    public init(serverSessionID: String, outcome: Outcome) {
        self.serverSessionID = serverSessionID
        self.outcome = outcome
    }
}

extension ApplicationSessionReply: SessionMessageBody {
    static let kind = SessionMessage.Kind.applicationSessionReply

    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        var r = try FieldReader(json, path)
        serverSessionID = try r.requiredString(MessageKeys.serverSessionID)
        try checkSessionID(serverSessionID, path.field(MessageKeys.serverSessionID))
        switch (r.take(MessageKeys.applicationSession), r.take(MessageKeys.error)) {
        case (let session?, nil):
            outcome = .session(try ApplicationSessionResult(json: session, path.field(MessageKeys.applicationSession)))
        case (nil, let error?):
            outcome = .error(try WireError(json: error, path.field(MessageKeys.error)))
        case (_?, _?):
            throw path.malformed("both \"application_session\" and \"error\"; expected exactly one")
        case (nil, nil):
            throw path.malformed("missing field \"application_session\" or \"error\"")
        }
        try r.rejectUnknown()
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        try checkSessionID(serverSessionID, path.field(MessageKeys.serverSessionID))
        var o: [String: JSONValue] = [MessageKeys.serverSessionID: .string(serverSessionID)]
        switch outcome {
        case .session(let s):
            o[MessageKeys.applicationSession] = try s.toJSON(path.field(MessageKeys.applicationSession))
        case .error(let e):
            o[MessageKeys.error] = try e.toJSON(path.field(MessageKeys.error))
        }
        return .object(o)
    }
}
