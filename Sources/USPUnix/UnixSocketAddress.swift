#if canImport(Glibc)
import Glibc
#endif

/// A filesystem path for an AF_UNIX socket, checked against `sun_path` (108 bytes with its NUL).
public struct UnixSocketAddress: Hashable, Sendable, CustomStringConvertible {
    public let path: String

    /// The longest path `sun_path` holds, without the terminating NUL.
    public static let maximumPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    public init(path: String) throws(UnixError) {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, !bytes.contains(0) else { throw UnixError(.invalidPath, "socket path \"\(path)\" is empty or has a NUL byte") }
        guard bytes.count <= Self.maximumPathLength else {
            throw UnixError(.invalidPath, "socket path \(path) is \(bytes.count) bytes; at most \(Self.maximumPathLength) fit in sun_path")
        }
        self.path = path
    }

    public var description: String { path }

    /// Calls `body` with the `sockaddr_un` and its length.
    public func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + 1)
        return try withUnsafePointer(to: &address) { p in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, length) }
        }
    }
}
