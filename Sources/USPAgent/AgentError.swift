import USPErrors

/// The one error type of USPAgent: a `Code`, which is also the `code` of an `{"ok":false,…}`
/// response, and one line for a person that says what and where.
///
/// Failures of the USP side (an unknown application, an unreachable server, …) keep the code of
/// the `USPClientError` behind them (`unknown_application`, `unreachable`, …) and its message.
public struct AgentError: CodedError {
    public typealias Code = ErrorCode<AgentError>

    public var code: Code
    /// One line: what failed, where, and what to do about it.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension ErrorCode<AgentError> {
    /// The request is not a JSON object of the expected shape (not JSON, a missing or
    /// mistyped field, an unknown key, a zero length).
    public static var malformedRequest: Self { Self("malformed_request") }
    /// The request's length prefix is above `LengthPrefixedMessage.maximumLength`.
    public static var requestTooLarge: Self { Self("request_too_large") }
    /// `v` is not a version this agent speaks.
    public static var unsupportedVersion: Self { Self("unsupported_version") }
    /// `op` is not `open` or `status`.
    public static var unknownOperation: Self { Self("unknown_operation") }
    /// The peer's uid (SO_PEERCRED) is not the agent's.
    public static var uidMismatch: Self { Self("uid_mismatch") }
    /// The program opened more streams than `--rate` allows.
    public static var rateLimited: Self { Self("rate_limited") }
    /// Too many requests are being served at once.
    public static var busy: Self { Self("busy") }
    /// The connection closed before a request began (a liveness probe; not answered or logged).
    public static var endOfFile: Self { Self("end_of_file") }
    /// The request did not arrive in time.
    public static var timedOut: Self { Self("timed_out") }
    /// The socket or its directory is owned by another user, writable by others, or not a socket.
    public static var unsafeSocket: Self { Self("unsafe_socket") }
    /// The descriptor a service manager passed (LISTEN_FDS) is not one listening AF_UNIX
    /// stream socket bound to a file path.
    public static var invalidSocket: Self { Self("invalid_socket") }
    /// `usp agent start`: the agent exited, or did not answer, before it was listening.
    public static var startFailed: Self { Self("start_failed") }
    /// Another agent already listens on the socket.
    public static var alreadyRunning: Self { Self("already_running") }
    /// No agent listens on the socket.
    public static var notRunning: Self { Self("not_running") }
    /// The agent's answer was not what the protocol says (client side).
    public static var protocolViolation: Self { Self("agent_protocol") }
    /// A setting of the agent that does not parse (`--rate`).
    public static var invalidArgument: Self { Self("invalid_argument") }
    /// A system call failed (socket, bind, sendmsg…).
    public static var systemCall: Self { Self("system_call") }
}
