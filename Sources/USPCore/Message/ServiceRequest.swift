/// Message kind 3, client → server: request services from the menu (proposal §4.a.ii).
///
///     {"client_session_id":"<id>","authorization_token":null|"<tok>",
///      "requested_services":{"0":{…auth fields…}|["tok1","tok2"],"1":{…body…},"3":{…}}}
///
/// Several indices may be requested at once. Index 0 is `authentication`; indices 1 and up
/// are in `services`, each with a JSON object body. At most `Limits.maxIndices` in all.
///
/// `client_ip` (optional) asks for connection brokering: every application token of this request
/// is for the client at that address, not for the caller (docs/PROTOCOL.md §6.3.1).
public struct ServiceRequest: Hashable, Sendable {
    public var clientSessionID: String
    public var authorizationToken: String?
    /// The address the application tokens are to be bound to (brokering); nil: the caller's own.
    public var clientIP: String?
    /// Index 0, when requested.
    public var authentication: AuthenticationRequest?
    /// Indices 1 and up → request body. Index 0 here is an encoding error.
    public var services: [ServiceIndex: [String: JSONValue]]

    public init(
        clientSessionID: String, authorizationToken: String? = nil,
        authentication: AuthenticationRequest? = nil, services: [ServiceIndex: [String: JSONValue]] = [:],
        clientIP: String? = nil
    ) {
        self.clientSessionID = clientSessionID
        self.authorizationToken = authorizationToken
        self.clientIP = clientIP
        self.authentication = authentication
        self.services = services
    }
}

extension ServiceRequest: SessionMessageBody {
    static let kind = SessionMessage.Kind.serviceRequest

    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        var r = try FieldReader(json, path)
        clientSessionID = try r.requiredString(MessageKeys.clientSessionID)
        try checkSessionID(clientSessionID, path.field(MessageKeys.clientSessionID))
        authorizationToken = try r.requiredNullableString(MessageKeys.authorizationToken)
        if let t = authorizationToken { try checkToken(t, path.field(MessageKeys.authorizationToken)) }
        clientIP = try r.optionalString(MessageKeys.clientIP)
        if let ip = clientIP { try checkClientIP(ip, path.field(MessageKeys.clientIP)) }
        let requested = try r.required(MessageKeys.requestedServices)
        authentication = nil
        services = [:]
        for entry in try readIndexMap(requested, path.field(MessageKeys.requestedServices)) {
            if entry.index.isAuthentication {
                authentication = try AuthenticationRequest(json: entry.value, entry.path)
            } else {
                guard case .object(let body) = entry.value else {
                    throw entry.path.wrongType("object (request body)", entry.value)
                }
                services[entry.index] = body
            }
        }
        try r.rejectUnknown()
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        try checkSessionID(clientSessionID, path.field(MessageKeys.clientSessionID))
        if let t = authorizationToken { try checkToken(t, path.field(MessageKeys.authorizationToken)) }
        if let ip = clientIP { try checkClientIP(ip, path.field(MessageKeys.clientIP)) }
        let mapPath = path.field(MessageKeys.requestedServices)
        try checkIndexCount(services.count + (authentication == nil ? 0 : 1), mapPath)
        var requested: [String: JSONValue] = [:]
        if let auth = authentication {
            requested[ServiceIndex.authentication.key] = try auth.toJSON(mapPath.key(ServiceIndex.authentication.key))
        }
        for (index, body) in services {
            guard !index.isAuthentication else {
                throw mapPath.key(index.key).malformed("index 0 is reserved for authentication")
            }
            requested[index.key] = .object(body)
        }
        var message: [String: JSONValue] = [
            MessageKeys.clientSessionID: .string(clientSessionID),
            MessageKeys.authorizationToken: authorizationToken.map(JSONValue.string) ?? .null,
            MessageKeys.requestedServices: .object(requested),
        ]
        // Absent rather than null when not brokering: the message stays as before.
        if let ip = clientIP { message[MessageKeys.clientIP] = .string(ip) }
        return .object(message)
    }
}
