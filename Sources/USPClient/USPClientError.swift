import USPCore

/// The one error type of USPClient: a `Code` to compare, and one line for a person that says
/// what failed and what to do (`usp` prints it after `usp: `).
public struct USPClientError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: Code
    /// One line: what failed, where, and what to do about it.
    public var message: String
    /// The protocol code behind it, when the server or the session gave one.
    public var wireCode: USPError.Code?

    public init(_ code: Code, _ message: String, wireCode: USPError.Code? = nil) {
        self.code = code
        self.message = message
        self.wireCode = wireCode
    }

    public var description: String { message }

    public static func == (lhs: USPClientError, rhs: USPClientError) -> Bool { lhs.code == rhs.code && lhs.message == rhs.message }
    public func hash(into hasher: inout Hasher) { hasher.combine(code); hasher.combine(message) }

    /// An extensible code, compared by name.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A URI that does not parse.
        public static let invalidURI = Code("invalid_uri")
        /// A command-line argument that does not make sense (bad --field, bad address).
        public static let invalidArgument = Code("invalid_argument")
        /// The server cannot be reached (refused, unreachable, unresolvable, timed out).
        public static let unreachable = Code("unreachable")
        /// The server's key differs from the one known_servers holds.
        public static let serverKeyChanged = Code("server_key_changed")
        /// The server's key differs from the one pinned in the URI.
        public static let serverKeyMismatch = Code("server_key_mismatch")
        /// The server's key is marked @revoked in known_servers.
        public static let serverKeyRevoked = Code("server_key_revoked")
        /// Strict checking and a server not in known_servers.
        public static let unknownServer = Code("unknown_server")
        /// The server did not complete a handshake for the key we expected.
        public static let handshakeRejected = Code("handshake_rejected")
        /// Wrong user or password, or a key the server does not know.
        public static let authenticationFailed = Code("authentication_failed")
        /// The request needs a login first.
        public static let loginRequired = Code("login_required")
        /// A saved login (authorization token) the server no longer accepts.
        public static let loginExpired = Code("login_expired")
        /// No application by that name on the menu.
        public static let unknownApplication = Code("unknown_application")
        /// The server refused an application request or token.
        public static let refused = Code("refused")
        /// A key file or other local file that is missing, unreadable or unsafe.
        public static let localFile = Code("local_file")
        /// The connection or stream ended unexpectedly, or the peer broke the protocol.
        public static let connectionLost = Code("connection_lost")
        /// A stream was reset by the server.
        public static let streamReset = Code("stream_reset")
        /// Nothing to act on (no saved login, no such known_servers line).
        public static let notFound = Code("not_found")
        /// The server does not offer what was asked (a login method).
        public static let unsupported = Code("unsupported")
    }
}
