import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `uspd serve` makes sure of before it creates anything: that it can listen where it was
/// told to, and that no other uspd serves the same data directory. And, while it runs, that the
/// database it opened is still the one at its path.
public enum StartupChecks {
    /// Binds each address once and lets it go: a port in use or an address not on this host is
    /// found before a data directory is created or a password printed. Addresses in `optional`
    /// may fail. (Another process may still take a port between this and the real bind; that
    /// one then fails the same way, later.)
    public static func probe(_ addresses: [ListenAddress], optional: Set<String> = []) throws(ListenError) {
        for a in addresses where !optional.contains(a.text) {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
            var result: UnsafeMutablePointer<addrinfo>?
            let host = a.host == "*" ? nil : a.host
            let rc = getaddrinfo(host, String(a.port), &hints, &result)
            guard rc == 0, let info = result else {
                throw ListenError(address: a.text, underlying: String(cString: gai_strerror(rc)))
            }
            defer { freeaddrinfo(result) }
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw ListenError(address: a.text, underlying: String(cString: strerror(errno))) }
            defer { close(fd) }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if info.pointee.ai_family == AF_INET6 {
                setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
                let why = errno == EADDRINUSE ? "the port is in use (another uspd, or another program)" : String(cString: strerror(errno))
                throw ListenError(address: a.text, underlying: why)
            }
        }
    }

    /// An exclusive lock on `DATA/uspd.lock`, held until the process exits; the file says whose.
    public final class DataDirectoryLock: Sendable {
        let descriptor: Int32
        public let path: String

        public struct Held: Error, CustomStringConvertible {
            public let description: String
        }

        /// Creates `directory` (0700) if needed, then takes the lock, or says who holds it.
        public init(directory: String) throws {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            path = (directory as NSString).appendingPathComponent("uspd.lock")
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Held(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                var text = [UInt8](repeating: 0, count: 64)
                let n = pread(fd, &text, 63, 0)
                close(fd)
                let pid = String(decoding: text.prefix(max(0, n)), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                throw Held(description: "another uspd\(pid.isEmpty ? "" : " (pid \(pid))") is serving \(directory) (it holds \(path)); stop it first, or use another --data-dir")
            }
            let me = Array("\(getpid())\n".utf8)
            _ = ftruncate(fd, 0)
            _ = pwrite(fd, me, me.count, 0)
            descriptor = fd
        }
    }

    /// The identity of the file at `path` (device and inode), nil if there is none.
    public static func identity(of path: String) -> (dev: UInt64, ino: UInt64)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// What is wrong with the database at `path` now, if it is not the file opened as `opened`.
    public static func databaseProblem(path: String, opened: (dev: UInt64, ino: UInt64)) -> String? {
        guard let now = identity(of: path) else {
            return "the database \(path) was deleted while uspd runs: grants would go to a file nobody sees; stopping"
        }
        guard now == opened else {
            return "the database \(path) was replaced while uspd runs (another file at that path); stopping: restart to use the new one"
        }
        return nil
    }
}
