import Glibc
import NIOCore

/// The TCP connect of `StdioPollSession`, blocking the calling thread: the connection begun early
/// (`EarlyConnection`) when it goes to this server, else each address of the host in turn, as
/// ssh tries them. Failures carry `ErrorText.connect`'s messages.
enum PollConnector {
    /// A connected, non-blocking socket with TCP_NODELAY (and Fast Open when asked).
    static func connect(server: ServerURI, options: USPConnectionOptions, early: EarlyConnection?) throws(USPClientError) -> CInt {
        let host = server.connectHost ?? server.host
        let port = Int(server.port)
        if let fd = early?.take(host: host, port: port) {
            do {
                try EarlyConnection.waitConnected(fd, timeout: options.connectTimeout)
            } catch {
                throw ErrorText.connect(error, server: server)
            }
            return fd
        }
        let addresses: [SocketAddress]
        if let literal = try? SocketAddress(ipAddress: host, port: port) {
            addresses = [literal]
        } else {
            addresses = resolve(host, port: port)
            guard !addresses.isEmpty else { throw ErrorText.connect(SocketAddressError.unknown(host: host, port: port), server: server) }
        }
        let deadline = NIODeadline.now() + options.connectTimeout
        var last: any Error = ChannelError.connectTimeout(options.connectTimeout)
        for address in addresses {
            let left = deadline - .now()
            guard left > .zero else { break }
            do {
                return try connect(to: address, fastOpen: options.fastOpen, timeout: left)
            } catch {
                last = error
            }
        }
        throw ErrorText.connect(last, server: server)
    }

    private static func connect(to address: SocketAddress, fastOpen: Bool, timeout: TimeAmount) throws -> CInt {
        let family = address.protocol == .inet6 ? AF_INET6 : AF_INET
        let fd = socket(family, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        var one: CInt = 1
        _ = setsockopt(fd, CInt(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
        if fastOpen { _ = setsockopt(fd, CInt(IPPROTO_TCP), EarlyConnection.fastOpenConnect, &one, socklen_t(MemoryLayout<CInt>.size)) }
        let result = address.withSockAddr { pointer, size in Glibc.connect(fd, pointer, socklen_t(size)) }
        if result == 0 { return fd }
        guard errno == EINPROGRESS else {
            let e = errno
            close(fd)
            throw IOError(errnoCode: e, reason: "connect")
        }
        try EarlyConnection.waitConnected(fd, timeout: timeout)
        return fd
    }

    /// The host's addresses from getaddrinfo (IPv6 and IPv4, in the resolver's order).
    private static func resolve(_ host: String, port: Int) -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_socktype = CInt(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [SocketAddress] = []
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let info = next {
            if let sa = info.pointee.ai_addr {
                switch CInt(sa.pointee.sa_family) {
                case AF_INET:
                    let v4 = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
                    addresses.append(SocketAddress(v4, host: host))
                case AF_INET6:
                    let v6 = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
                    addresses.append(SocketAddress(v6, host: host))
                default:
                    break
                }
            }
            next = info.pointee.ai_next
        }
        return addresses
    }
}
