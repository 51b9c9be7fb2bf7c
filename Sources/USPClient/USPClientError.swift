import USPCore
import USPErrors

/// The one error type of USPClient: a `Code` to compare, and one line for a person that says
/// what failed and what to do (`usp` prints it after `usp: `). Two errors are equal when code
/// and message are.
public struct USPClientError: CodedError {
    public typealias Code = ErrorCode<USPClientError>

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
}

extension ErrorCode<USPClientError> {
    /// A URI that does not parse.
    public static var invalidURI: Self { Self("invalid_uri") }
    /// A command-line argument that does not make sense (bad --field, bad address).
    public static var invalidArgument: Self { Self("invalid_argument") }
    /// The server cannot be reached (refused, unreachable, unresolvable, timed out).
    public static var unreachable: Self { Self("unreachable") }
    /// The server's key differs from the one known_servers holds.
    public static var serverKeyChanged: Self { Self("server_key_changed") }
    /// The server's key differs from the one pinned in the URI.
    public static var serverKeyMismatch: Self { Self("server_key_mismatch") }
    /// The server's key is marked @revoked in known_servers.
    public static var serverKeyRevoked: Self { Self("server_key_revoked") }
    /// Strict checking and a server not in known_servers.
    public static var unknownServer: Self { Self("unknown_server") }
    /// The server did not complete a handshake for the key we expected.
    public static var handshakeRejected: Self { Self("handshake_rejected") }
    /// Wrong user or password, or a key the server does not know.
    public static var authenticationFailed: Self { Self("authentication_failed") }
    /// The request needs a login first.
    public static var loginRequired: Self { Self("login_required") }
    /// A saved login (authorization token) the server no longer accepts.
    public static var loginExpired: Self { Self("login_expired") }
    /// No application by that name on the menu.
    public static var unknownApplication: Self { Self("unknown_application") }
    /// The server refused an application request or token.
    public static var refused: Self { Self("refused") }
    /// A key file or other local file that is missing, unreadable or unsafe.
    public static var localFile: Self { Self("local_file") }
    /// The connection or stream ended unexpectedly, or the peer broke the protocol.
    public static var connectionLost: Self { Self("connection_lost") }
    /// A stream was reset by the server.
    public static var streamReset: Self { Self("stream_reset") }
    /// Nothing to act on (no saved login, no such known_servers line).
    public static var notFound: Self { Self("not_found") }
    /// The client's configuration file has an unknown keyword or a bad value (the message names
    /// file:line).
    public static var invalidConfig: Self { Self("invalid_config") }
    /// The server does not offer what was asked (a login method).
    public static var unsupported: Self { Self("unsupported") }
}
