import Glibc

/// Blocking IPv4 TCP over POSIX sockets: just enough for the demo's server and client.

/// A connected socket. Reads and writes are plain system calls, safe from one thread each.
final class TCPSocket: Sendable {
    let fd: Int32
    /// The other end's address as `inet_ntop` prints it.
    let peerAddress: String

    init(fd: Int32, peerAddress: String) {
        self.fd = fd
        self.peerAddress = peerAddress
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Connects to `host:port`, from the local address `source` if given (e.g. "127.0.0.2").
    static func connect(host: String, port: UInt16, from source: String? = nil) throws(DemoError) -> TCPSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DemoError("socket: \(lastError())") }
        do throws(DemoError) {
            if let source {
                var local = try socketAddress(source, 0)
                guard withSockaddr(&local, { bind(fd, $0, $1) }) == 0 else { throw DemoError("bind \(source): \(lastError())") }
            }
            var remote = try socketAddress(host, port)
            guard withSockaddr(&remote, { Glibc.connect(fd, $0, $1) }) == 0 else {
                throw DemoError("connect \(host):\(port): \(lastError())")
            }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return TCPSocket(fd: fd, peerAddress: host)
    }

    /// This end's address.
    var localAddress: String {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return ok == 0 ? addressText(address) : "?"
    }

    /// Gives up on a read after `seconds` (the read then throws).
    func setReadTimeout(_ seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Reads what is available into `buffer`; 0 means the peer closed its side.
    func read(into buffer: inout [UInt8]) throws(DemoError) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n >= 0 { return n }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw DemoError("read from \(peerAddress) timed out") }
            throw DemoError("read from \(peerAddress): \(lastError())")
        }
    }

    func writeAll(_ bytes: UnsafeRawBufferPointer) throws(DemoError) {
        var offset = 0
        while offset < bytes.count {
            let n = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                throw DemoError("write to \(peerAddress): \(lastError())")
            }
            offset += n
        }
    }

    /// Half-close: the peer reads end of input, and can still send.
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads and drops input until the peer closes (or the read timeout passes), so closing does
    /// not turn unread bytes into a reset that could destroy data still in flight to the peer.
    func lingerUntilPeerCloses() {
        var scratch = [UInt8](repeating: 0, count: 4096)
        while let n = try? read(into: &scratch), n > 0 {}
    }

    func close() { Glibc.close(fd) }
}

/// A listening socket.
final class TCPListener: Sendable {
    let fd: Int32
    let host: String
    let port: UInt16

    /// Listens on `host` with a port the kernel picks.
    init(host: String) throws(DemoError) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DemoError("socket: \(lastError())") }
        self.fd = fd
        self.host = host
        var address = try socketAddress(host, 0)
        guard withSockaddr(&address, { bind(fd, $0, $1) }) == 0, listen(fd, 16) == 0 else {
            let message = "listen on \(host): \(lastError())"
            Glibc.close(fd)
            throw DemoError(message)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard ok == 0 else {
            let message = "getsockname: \(lastError())"
            Glibc.close(fd)
            throw DemoError(message)
        }
        port = UInt16(bigEndian: address.sin_port)
    }

    /// Waits for the next connection.
    func accept() throws(DemoError) -> TCPSocket {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        while true {
            let client = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(fd, $0, &length) }
            }
            if client >= 0 { return TCPSocket(fd: client, peerAddress: addressText(address)) }
            if errno == EINTR || errno == ECONNABORTED { continue }
            throw DemoError("accept: \(lastError())")
        }
    }
}

// MARK: - Helpers

private func socketAddress(_ host: String, _ port: UInt16) throws(DemoError) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw DemoError("not an IPv4 address: \(host)") }
    return address
}

private func withSockaddr(_ address: inout sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
    withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

private func addressText(_ address: sockaddr_in) -> String {
    var addr = address.sin_addr
    var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
    guard inet_ntop(AF_INET, &addr, &text, socklen_t(text.count)) != nil else { return "?" }
    return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func lastError() -> String { String(cString: strerror(errno)) }
