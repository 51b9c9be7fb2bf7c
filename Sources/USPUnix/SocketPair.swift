#if canImport(Glibc)
import Glibc
#endif

/// Two connected AF_UNIX SOCK_STREAM sockets (socketpair(2)), both close-on-exec. Each end reads
/// what the other writes; `shutdown(SHUT_WR)` on one end is end-of-file at the other.
public struct SocketPair: Sendable {
    public let first: CInt
    public let second: CInt

    /// Creates the pair. EMFILE/ENFILE throw `UnixError.Code.descriptorsExhausted`.
    public static func make(nonBlocking: Bool = false) throws(UnixError) -> SocketPair {
        var fds: [CInt] = [-1, -1]
        var type = CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= CInt(SOCK_NONBLOCK.rawValue) }
        guard socketpair(AF_UNIX, type, 0, &fds) == 0 else { throw .call("socketpair") }
        return SocketPair(first: fds[0], second: fds[1])
    }

    /// Closes both ends.
    public func close() {
        _ = Glibc.close(first)
        _ = Glibc.close(second)
    }
}
