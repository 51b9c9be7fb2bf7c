#if canImport(Glibc)
import Glibc
#endif

/// Finds the descriptor of one of this process's TCP connections by its addresses, for code that
/// holds the connection only through a library that does not expose the descriptor (SwiftNIO's
/// channels do not): a relay-free hand-off passes the client's socket itself to an application.
///
/// How: every open descriptor of the process (`/proc/self/fd`) that is a socket is asked
/// `getsockname`/`getpeername`; the one whose local and remote address and port both match is
/// duplicated (F_DUPFD_CLOEXEC), and the match is checked again **on the duplicate**, so a
/// descriptor closed and reused by another thread between the scan and the dup cannot be
/// returned by mistake. Within one network namespace a TCP connection's (local, remote) pair is
/// unique, so at most one open file description matches (several descriptors may share it).
public enum TCPSocketLookup {
    /// An address as `inet_ntop` writes it (IPv4 `a.b.c.d`, IPv6 without brackets) and a port.
    public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
        public var address: String
        public var port: Int
        public init(address: String, port: Int) {
            self.address = address
            self.port = port
        }
        public var description: String { address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)" }
    }

    /// A close-on-exec duplicate of the connected socket with these addresses; the caller owns it.
    /// Throws `systemCall` (ENOENT) when no open descriptor matches.
    public static func duplicate(local: Endpoint, remote: Endpoint) throws(UnixError) -> CInt {
        for fd in try openDescriptors() where matches(fd, local: local, remote: remote) {
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
            guard copy >= 0 else { throw .call("fcntl(F_DUPFD_CLOEXEC) of fd \(fd)") }
            if matches(copy, local: local, remote: remote) { return copy }
            close(copy)
        }
        throw UnixError(.systemCall, errno: ENOENT, "no open socket is connected from \(local) to \(remote)")
    }

    /// The local and remote endpoints of a connected AF_INET/AF_INET6 socket, or nil.
    public static func endpoints(of fd: CInt) -> (local: Endpoint, remote: Endpoint)? {
        guard let local = endpoint(fd, getsockname), let remote = endpoint(fd, getpeername) else { return nil }
        return (local, remote)
    }

    private static func matches(_ fd: CInt, local: Endpoint, remote: Endpoint) -> Bool {
        guard let e = endpoints(of: fd) else { return false }
        return e.local == local && e.remote == remote
    }

    private static func openDescriptors() throws(UnixError) -> [CInt] {
        guard let dir = opendir("/proc/self/fd") else { throw .call("opendir /proc/self/fd") }
        defer { closedir(dir) }
        let own = dirfd(dir)
        var fds: [CInt] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if let fd = CInt(name), fd != own { fds.append(fd) }
        }
        return fds
    }

    private static func endpoint(_ fd: CInt,
                                 _ get: (CInt, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> CInt) -> Endpoint? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { get(fd, $0, &length) }
        }
        guard ok == 0 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch CInt(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin -> Endpoint? in
                    var addr = sin.pointee.sin_addr
                    guard inet_ntop(AF_INET, &addr, &text, socklen_t(text.count)) != nil else { return nil }
                    return Endpoint(address: String(cString: text), port: Int(UInt16(bigEndian: sin.pointee.sin_port)))
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 -> Endpoint? in
                    var addr = sin6.pointee.sin6_addr
                    guard inet_ntop(AF_INET6, &addr, &text, socklen_t(text.count)) != nil else { return nil }
                    return Endpoint(address: String(cString: text), port: Int(UInt16(bigEndian: sin6.pointee.sin6_port)))
                }
            }
        default:
            return nil
        }
    }
}
