#if canImport(Glibc)
import Glibc
#endif

/// The one error type of USPUnix (GUIDE §3): a `Code` compared alone, the `errno` of the failed
/// call when there was one, and a one-line detail for a person.
public struct UnixError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A system call failed; `errno` says why.
        public static let systemCall = Code("system_call")
        /// The process or the system ran out of descriptors (EMFILE, ENFILE).
        public static let descriptorsExhausted = Code("descriptors_exhausted")
        /// More descriptors arrived than the receiver allowed, or the kernel truncated them (MSG_CTRUNC).
        public static let tooManyDescriptors = Code("too_many_descriptors")
        /// A socket path longer than `sun_path` holds, or with a NUL byte.
        public static let invalidPath = Code("invalid_path")
        /// The peer closed the connection before the expected bytes arrived.
        public static let closed = Code("closed")
        /// A receive timed out (SO_RCVTIMEO) or a send timed out (SO_SNDTIMEO).
        public static let timedOut = Code("timed_out")
    }

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
