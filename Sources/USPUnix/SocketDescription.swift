#if canImport(Glibc)
import Glibc
#endif

/// What a descriptor is as a socket (getsockopt SO_DOMAIN, SO_TYPE, SO_ACCEPTCONN and
/// getsockname): enough to check a descriptor handed over by a service manager before serving on it.
public struct SocketDescription: Hashable, Sendable {
    /// AF_UNIX, AF_INET, …
    public var domain: CInt
    /// SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET, …
    public var type: CInt
    /// listen() was called on it.
    public var isListening: Bool
    /// For an AF_UNIX socket bound to a filesystem path, that path; nil when unbound or abstract.
    public var path: String?

    public init(domain: CInt, type: CInt, isListening: Bool, path: String?) {
        self.domain = domain
        self.type = type
        self.isListening = isListening
        self.path = path
    }

    /// Describes `fd`. A descriptor that is not open fails with EBADF, one that is not a socket
    /// with ENOTSOCK.
    public static func of(_ fd: CInt) throws(UnixError) -> SocketDescription {
        func option(_ name: CInt, _ label: String) throws(UnixError) -> CInt {
            var value: CInt = 0
            var length = socklen_t(MemoryLayout<CInt>.size)
            guard getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 else { throw .call("getsockopt(\(label)) on descriptor \(fd)") }
            return value
        }
        let domain = try option(SO_DOMAIN, "SO_DOMAIN")
        let type = try option(SO_TYPE, "SO_TYPE")
        let listening = try option(SO_ACCEPTCONN, "SO_ACCEPTCONN") != 0
        var path: String?
        if domain == AF_UNIX {
            var address = sockaddr_un()
            var length = socklen_t(MemoryLayout<sockaddr_un>.size)
            let rc = withUnsafeMutablePointer(to: &address) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            guard rc == 0 else { throw .call("getsockname on descriptor \(fd)") }
            let offset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
            let count = max(0, Int(length) - offset)
            let bytes = withUnsafeBytes(of: address.sun_path) { Array($0.prefix(count)) }
            // Unnamed (no bytes) or abstract (a leading NUL): no file to check.
            if let first = bytes.first, first != 0 {
                path = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        return SocketDescription(domain: domain, type: type, isListening: listening, path: path)
    }

    /// "AF_UNIX", "AF_INET", "AF_INET6" or "family N", for messages.
    public var domainName: String {
        switch domain {
        case AF_UNIX: "AF_UNIX"
        case AF_INET: "AF_INET"
        case AF_INET6: "AF_INET6"
        default: "family \(domain)"
        }
    }

    /// "stream", "datagram", "seqpacket" or "type N", for messages.
    public var typeName: String {
        switch type {
        case CInt(SOCK_STREAM.rawValue): "stream"
        case CInt(SOCK_DGRAM.rawValue): "datagram"
        case CInt(SOCK_SEQPACKET.rawValue): "seqpacket"
        default: "type \(type)"
        }
    }
}
