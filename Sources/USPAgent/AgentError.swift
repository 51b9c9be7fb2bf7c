/// The one error type of USPAgent (GUIDE §3): a `Code` compared alone, which is also the `code`
/// of an `{"ok":false,…}` response, and one line for a person that says what and where.
///
/// Failures of the USP side (an unknown application, an unreachable server, …) keep the code of
/// the `USPClientError` behind them (`unknown_application`, `unreachable`, …) and its message.
public struct AgentError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The request is not a JSON object of the expected shape (not JSON, a missing or
        /// mistyped field, an unknown key, a zero length).
        public static let malformedRequest = Code("malformed_request")
        /// The request's length prefix is above `AgentFrame.maximumLength`.
        public static let requestTooLarge = Code("request_too_large")
        /// `v` is not a version this agent speaks.
        public static let unsupportedVersion = Code("unsupported_version")
        /// `op` is not `open` or `status`.
        public static let unknownOperation = Code("unknown_operation")
        /// The peer's uid (SO_PEERCRED) is not the agent's.
        public static let uidMismatch = Code("uid_mismatch")
        /// The program opened more streams than `--rate` allows.
        public static let rateLimited = Code("rate_limited")
        /// Too many requests are being served at once.
        public static let busy = Code("busy")
        /// The connection closed before a request began (a liveness probe; not answered or logged).
        public static let endOfFile = Code("end_of_file")
        /// The request did not arrive in time.
        public static let timedOut = Code("timed_out")
        /// The socket or its directory is owned by another user, writable by others, or not a socket.
        public static let unsafeSocket = Code("unsafe_socket")
        /// The descriptor a service manager passed (LISTEN_FDS) is not one listening AF_UNIX
        /// stream socket bound to a file path.
        public static let invalidSocket = Code("invalid_socket")
        /// `usp agent start`: the agent exited, or did not answer, before it was listening.
        public static let startFailed = Code("start_failed")
        /// Another agent already listens on the socket.
        public static let alreadyRunning = Code("already_running")
        /// No agent listens on the socket.
        public static let notRunning = Code("not_running")
        /// The agent's answer was not what the protocol says (client side).
        public static let protocolViolation = Code("agent_protocol")
        /// A setting of the agent that does not parse (`--rate`).
        public static let invalidArgument = Code("invalid_argument")
        /// A system call failed (socket, bind, sendmsg…).
        public static let systemCall = Code("system_call")
    }

    public var code: Code
    /// One line: what failed, where, and what to do about it.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
