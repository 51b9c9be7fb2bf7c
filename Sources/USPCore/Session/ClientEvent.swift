/// What a client session tells its I/O shell. Byte views are valid only during the callback.
public enum ClientEvent {
    /// The handshake finished. `earlyDataAccepted` says whether message 1's early frames were acted on
    /// (if not, the session already sent them again).
    case handshakeCompleted(pattern: HandshakeLayout.Pattern, serverStatic: [UInt8], earlyDataAccepted: Bool)
    /// The application menu (after the initial request, and again after a login).
    case menu(ApplicationMenu)
    /// The per-index reply to `requestServices`.
    case serviceReply(ServiceReply)
    /// The reply to an `application_session` action (begin on a dedicated connection, end, or app-defined).
    case applicationSessionReply(ApplicationSessionReply)
    /// The server's session-level error, sent just before it closes.
    case serverError(WireError)
    /// The server accepted a stream opened with `openStream` or by an application_session begin.
    case streamAccepted(stream: UInt32)
    case streamRejected(stream: UInt32, code: USPError.Code, message: String)
    case streamData(stream: UInt32, data: UnsafeRawBufferPointer)
    case streamFinished(stream: UInt32)
    case streamClosed(stream: UInt32, code: USPError.Code)
    case streamWritable(stream: UInt32)
    /// The session is over: nil for a clean CLOSE, else the reason.
    case closed(USPError?)
}

/// The one decision a client session cannot make alone: whether to trust a server key learned in XX.
public protocol ClientSessionDelegate {
    /// Called on first contact (XX) with the server's static key. Return false to refuse it
    /// (for instance, it differs from a pinned or known key): the session ends with `server_key_mismatch`.
    func acceptServerKey(_ key: [UInt8]) -> Bool
}

/// A delegate that trusts any key (trust on first use without memory): for tests and demos.
public struct TrustAnyServerKey: ClientSessionDelegate {
    public init() {}
    public func acceptServerKey(_ key: [UInt8]) -> Bool { true }
}

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
