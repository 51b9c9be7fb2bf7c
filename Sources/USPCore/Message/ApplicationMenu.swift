/// Message kind 2, server → client: the application menu (proposal §4.a.i).
///
///     {"v":1,"server_session_id":"<id>","application_menu":{
///        "0":[{"auth_method":"password","expected_request_body":{…}}, …],
///        "1":{"name":"echo","expected_request_body":{"message":"string"}}, …}}
///
/// Index 0 is `authentication` (an array of methods before login, a token-invalidation object
/// after); indices 1 and up are `applications`. At most `Limits.maxIndices` entries in all.
public struct ApplicationMenu: Hashable, Sendable {
    public var serverSessionID: String
    /// Index 0, when offered.
    public var authentication: AuthenticationOffer?
    /// Indices 1 and up. Index 0 here is an encoding error.
    public var applications: [ServiceIndex: ApplicationOffer]

    public init(
        serverSessionID: String, authentication: AuthenticationOffer? = nil,
        applications: [ServiceIndex: ApplicationOffer] = [:]
    ) {
        self.serverSessionID = serverSessionID
        self.authentication = authentication
        self.applications = applications
    }
}

extension ApplicationMenu: SessionMessageBody {
    static let kind = SessionMessage.Kind.menu

    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        var r = try FieldReader(json, path)
        try readVersion(&r)
        serverSessionID = try r.requiredString(MessageKeys.serverSessionID)
        try checkSessionID(serverSessionID, path.field(MessageKeys.serverSessionID))
        let menu = try r.required(MessageKeys.applicationMenu)
        authentication = nil
        applications = [:]
        for entry in try readIndexMap(menu, path.field(MessageKeys.applicationMenu)) {
            if entry.index.isAuthentication {
                authentication = try AuthenticationOffer(json: entry.value, entry.path)
            } else {
                applications[entry.index] = try ApplicationOffer(json: entry.value, entry.path)
            }
        }
        try r.rejectUnknown()
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        try checkSessionID(serverSessionID, path.field(MessageKeys.serverSessionID))
        let menuPath = path.field(MessageKeys.applicationMenu)
        try checkIndexCount(applications.count + (authentication == nil ? 0 : 1), menuPath)
        var menu: [String: JSONValue] = [:]
        if let auth = authentication {
            menu[ServiceIndex.authentication.key] = try auth.toJSON(menuPath.key(ServiceIndex.authentication.key))
        }
        for (index, offer) in applications {
            guard !index.isAuthentication else {
                throw menuPath.key(index.key).malformed("index 0 is reserved for authentication")
            }
            menu[index.key] = try offer.toJSON(menuPath.key(index.key))
        }
        return .object([
            MessageKeys.version: .integer(SessionMessage.version),
            MessageKeys.serverSessionID: .string(serverSessionID),
            MessageKeys.applicationMenu: .object(menu),
        ])
    }
}
