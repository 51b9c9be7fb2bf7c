import USPNIO

#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP socket for tests (poll with timeouts; never waits forever).
public final class RawSocket {
    public let fd: CInt
    public private(set) var closedByPeer = false

    /// `source`: an IPv4 address to connect from (any 127.x.y.z works on loopback).
    public init(host: String, port: Int, source: String? = nil) throws {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else { throw SocketError("getaddrinfo \(host)") }
        defer { freeaddrinfo(result) }
        let s = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw SocketError("socket") }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            guard inet_pton(AF_INET, source, &local.sin_addr) == 1 else {
                close(s)
                throw SocketError("not an IPv4 address: \(source)")
            }
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                close(s)
                throw SocketError("bind \(source): \(String(cString: strerror(errno)))")
            }
        }
        guard connect(s, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            close(s)
            throw SocketError("connect \(host):\(port): \(String(cString: strerror(errno)))")
        }
        fd = s
    }

    deinit { close(fd) }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw SocketError("send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// Sends a FIN (shutdown(SHUT_WR)); reading goes on.
    public func shutdownWrite() throws {
        guard shutdown(fd, Int32(SHUT_WR)) == 0 else { throw SocketError("shutdown: \(String(cString: strerror(errno)))") }
    }

    /// Waits up to `timeout` seconds for bytes; returns nil on timeout, [] at end of stream.
    public func read(timeout: Double) -> [UInt8]? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let r = poll(&p, 1, Int32(timeout * 1000))
        guard r > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { closedByPeer = true; return [] }
        return Array(buffer[0..<n])
    }

    /// Reads until the peer closes or `timeout` passes: the bytes received and whether it closed.
    public func readToEnd(timeout: Double) -> (bytes: [UInt8], closed: Bool) {
        let end = ServerClock.monotonic() + timeout
        var all: [UInt8] = []
        while ServerClock.monotonic() < end {
            guard let chunk = read(timeout: max(0.01, end - ServerClock.monotonic())) else { continue }
            if chunk.isEmpty { return (all, true) }
            all += chunk
        }
        return (all, false)
    }
}

/// A socket call that failed, with what was tried.
public struct SocketError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
