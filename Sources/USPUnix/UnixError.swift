import USPErrors

#if canImport(Glibc)
import Glibc
#endif

/// The one error type of USPUnix: a `Code`, the `errno` of the failed call when there was one,
/// and a one-line detail for a person. Two errors are equal when code and errno are.
public struct UnixError: CodedError {
    public typealias Code = ErrorCode<UnixError>

    public var code: Code
    /// The errno of the failed call, or 0.
    public var errno: CInt
    /// One line for a person: which call, on what.
    public var detail: String

    public init(_ code: Code, errno: CInt = 0, _ detail: String) {
        self.code = code
        self.errno = errno
        self.detail = detail
    }

    /// The error of a failed call `call`: EMFILE and ENFILE are `descriptorsExhausted`,
    /// EAGAIN/EWOULDBLOCK after a timeout option is `timedOut`, the rest `systemCall`.
    public static func call(_ call: String, errno e: CInt = Glibc.errno) -> UnixError {
        let code: Code
        switch e {
        case EMFILE, ENFILE: code = .descriptorsExhausted
        case EAGAIN, EWOULDBLOCK: code = .timedOut
        default: code = .systemCall
        }
        return UnixError(code, errno: e, "\(call): \(String(cString: strerror(e)))")
    }

    public var description: String { detail }

    public static func == (lhs: UnixError, rhs: UnixError) -> Bool { lhs.code == rhs.code && lhs.errno == rhs.errno }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(errno)
    }
}

extension ErrorCode<UnixError> {
    /// A system call failed; `errno` says why.
    public static var systemCall: Self { Self("system_call") }
    /// The process or the system ran out of descriptors (EMFILE, ENFILE).
    public static var descriptorsExhausted: Self { Self("descriptors_exhausted") }
    /// More descriptors arrived than the receiver allowed, or the kernel truncated them (MSG_CTRUNC).
    public static var tooManyDescriptors: Self { Self("too_many_descriptors") }
    /// A socket path longer than `sun_path` holds, or with a NUL byte.
    public static var invalidPath: Self { Self("invalid_path") }
    /// The peer closed the connection before the expected bytes arrived.
    public static var closed: Self { Self("closed") }
    /// A receive timed out (SO_RCVTIMEO) or a send timed out (SO_SNDTIMEO).
    public static var timedOut: Self { Self("timed_out") }
    /// A `LengthPrefixedMessage` whose length prefix is 0.
    public static var emptyMessage: Self { Self("empty_message") }
    /// A `LengthPrefixedMessage` longer than `LengthPrefixedMessage.maximumLength`.
    public static var messageTooLarge: Self { Self("message_too_large") }
}
