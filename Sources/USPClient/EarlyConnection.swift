#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Synchronization

/// A TCP connection to the server begun before the client is ready to speak on it.
///
/// `usp connect` begins one as soon as it knows the address (right after reading its arguments):
/// the SYN leaves while the client still loads its key, known servers and saved login and sets up
/// its event loop, so that work overlaps the TCP round trip instead of coming before it. The first
/// USP connection to the same address and port takes the descriptor over
/// (`USPConnectionOptions.earlyConnection`); one never taken is closed when this is released.
/// Only an address literal qualifies: a host name is resolved on the usual path.
public final class EarlyConnection: Sendable {
    public let host: String
    public let port: Int
    private let descriptor: Mutex<CInt?>

    private init(host: String, port: Int, descriptor: CInt) {
        self.host = host
        self.port = port
        self.descriptor = Mutex(descriptor)
    }

    /// TCP_FASTOPEN_CONNECT (linux/tcp.h).
    static let fastOpenConnect: CInt = 30

    /// Sends the SYN (a non-blocking connect) to `host`, an IPv4 or IPv6 address, on `port`; nil
    /// for a host name, or when the connect fails at once (the usual path then tries and reports).
    /// With `fastOpen` and a cookie from this server in the kernel, the SYN waits for the first
    /// write instead (it carries message 1); without a cookie, it leaves now and asks for one.
    public static func begin(host: String, port: Int, fastOpen: Bool = false) -> EarlyConnection? {
        guard let address = try? SocketAddress(ipAddress: host, port: port) else { return nil }
        let family = address.protocol == .inet6 ? AF_INET6 : AF_INET
        let fd = socket(family, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var one: CInt = 1
        _ = setsockopt(fd, CInt(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
        if fastOpen { _ = setsockopt(fd, CInt(IPPROTO_TCP), fastOpenConnect, &one, socklen_t(MemoryLayout<CInt>.size)) }
        let result = address.withSockAddr { pointer, size in Glibc.connect(fd, pointer, socklen_t(size)) }
        guard result == 0 || errno == EINPROGRESS else {
            close(fd)
            return nil
        }
        return EarlyConnection(host: host, port: port, descriptor: fd)
    }

    /// The descriptor, once, if it goes to `host` and `port`; the caller owns it from then on.
    func take(host: String, port: Int) -> CInt? {
        guard host == self.host, port == self.port else { return nil }
        return descriptor.withLock { fd in
            defer { fd = nil }
            return fd
        }
    }

    /// Waits until the connect on `fd` is done: returns, or throws what `ClientBootstrap.connect`
    /// would have (IOError with the errno, or ChannelError.connectTimeout), closing `fd`.
    static func waitConnected(_ fd: CInt, timeout: TimeAmount) throws {
        var fds = [pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)]
        let deadline = NIODeadline.now() + timeout
        while true {
            let left = max(0, (deadline - .now()).nanoseconds / 1_000_000)
            let n = poll(&fds, 1, CInt(min(left, Int64(CInt.max))))
            if n > 0 { break }
            if n == 0 {
                close(fd)
                throw ChannelError.connectTimeout(timeout)
            }
            if errno != EINTR {
                let e = errno
                close(fd)
                throw IOError(errnoCode: e, reason: "poll")
            }
        }
        var error: CInt = 0
        var size = socklen_t(MemoryLayout<CInt>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0 { error = errno }
        if error != 0 {
            close(fd)
            throw IOError(errnoCode: error, reason: "connect")
        }
    }

    deinit {
        if let fd = descriptor.withLock({ $0 }) { close(fd) }
    }
}
