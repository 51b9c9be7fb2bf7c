/// The `application_session` object of an `application_session_reply`: what the server did.
///
///     {"action":"begin","client_tcp_stream":1,"server_tcp_stream":7}
///     {"action":"status","result":{…}}
///
/// For `begin`, `serverTCPStream` (the server's stream now carrying the application) is
/// required. Nil fields are omitted.
public struct ApplicationSessionResult: Hashable, Sendable {
    public var action: ApplicationAction
    public var clientTCPStream: UInt32?
    public var serverTCPStream: UInt32?
    /// Application-defined result of an action other than `begin`.
    public var result: [String: JSONValue]?

    public init(
        action: ApplicationAction, clientTCPStream: UInt32? = nil, serverTCPStream: UInt32? = nil,
        result: [String: JSONValue]? = nil
    ) {
        self.action = action
        self.clientTCPStream = clientTCPStream
        self.serverTCPStream = serverTCPStream
        self.result = result
    }

    /// A `begin` result: the application runs on `serverTCPStream`.
    public static func began(clientTCPStream: UInt32?, serverTCPStream: UInt32) -> ApplicationSessionResult {
        ApplicationSessionResult(action: .begin, clientTCPStream: clientTCPStream, serverTCPStream: serverTCPStream)
    }
}

extension ApplicationSessionResult {
    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        var r = try FieldReader(json, path)
        let action = try r.requiredString(MessageKeys.action)
        try ApplicationAction.check(action, path.field(MessageKeys.action))
        self.action = ApplicationAction(action)
        clientTCPStream = try r.optionalUInt32(MessageKeys.clientTCPStream)
        serverTCPStream = try r.optionalUInt32(MessageKeys.serverTCPStream)
        result = try r.optionalObject(MessageKeys.result)
        try r.rejectUnknown()
        try checkBegin(path)
    }

    private func checkBegin(_ path: MessagePath) throws(USPError) {
        if action == .begin && serverTCPStream == nil {
            throw path.malformed("missing field \"server_tcp_stream\" for action \"begin\"")
        }
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        try ApplicationAction.check(action.rawValue, path.field(MessageKeys.action))
        try checkBegin(path)
        var o: [String: JSONValue] = [MessageKeys.action: .string(action.rawValue)]
        if let s = clientTCPStream { o[MessageKeys.clientTCPStream] = .integer(Int64(s)) }
        if let s = serverTCPStream { o[MessageKeys.serverTCPStream] = .integer(Int64(s)) }
        if let r = result { o[MessageKeys.result] = .object(r) }
        return .object(o)
    }
}
