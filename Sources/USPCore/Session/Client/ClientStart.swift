/// What the client asks for in its initial request.
public struct ClientStart: Sendable {
    /// An authorization token secret (`usp1.…`) for an authenticated menu, or nil.
    public var authorizationToken: String?
    /// For a connection dedicated to one application (the proposal's client step 5): the
    /// application token secret and the action, usually `begin`.
    public var application: Application?
    /// For `begin`: the first bytes of the stream, sent with the request (in message 1 when possible).
    /// At most `StreamLimits.minInitialWindow` (16 KiB): `start` throws `.flowControl` beyond it.
    public var initialData: [UInt8]

    public struct Application: Sendable {
        /// The application token secret; nil for a begin by name.
        public var token: String?
        /// For a begin by name: the application, looked up on the menu of `authorizationToken`'s
        /// identity (or the public menu), and its request body. The server issues the token.
        public var name: String?
        public var request: [String: JSONValue]
        public var action: ApplicationAction
        public var parameters: [String: JSONValue]?
        public init(token: String, action: ApplicationAction = .begin, parameters: [String: JSONValue]? = nil) {
            self.token = token
            self.request = [:]
            self.action = action
            self.parameters = parameters
        }
        /// Begin `name` with `request`, without a token of one's own (docs/PROTOCOL.md §6.1).
        public init(name: String, request: [String: JSONValue] = [:]) {
            self.name = name
            self.request = request
            self.action = .begin
        }
    }

    public init(authorizationToken: String? = nil, application: Application? = nil, initialData: [UInt8] = []) {
        self.authorizationToken = authorizationToken
        self.application = application
        self.initialData = initialData
    }
}
