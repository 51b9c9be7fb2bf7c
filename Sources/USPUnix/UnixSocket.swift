#if canImport(Glibc)
import Glibc
#endif

/// Stream sockets on a filesystem path: listen, accept, connect; all close-on-exec.
public enum UnixSocket {
    /// A listening socket at `address`. An existing socket file there is replaced only when
    /// `replacingStale` is set and nothing answers on it (a leftover of a crashed process).
    /// With `mode`, the socket file is created with that mode (the umask is narrowed around
    /// bind, so it never exists with a wider one; the umask is process-wide, so call this
    /// before other threads create files) and set to it exactly.
    public static func listen(at address: UnixSocketAddress, backlog: CInt = 64, replacingStale: Bool = true,
                              mode: mode_t? = nil) throws(UnixError) -> CInt {
        if replacingStale, isStale(address) { unlink(address.path) }
        let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .call("socket(AF_UNIX)") }
        let saved = mode.map { umask(~$0 & 0o777) }
        let bound = address.withSockAddr { bind(fd, $0, $1) }
        if let saved { umask(saved) }
        if bound == 0, let mode, chmod(address.path, mode) != 0 {
            let e = UnixError.call("chmod \(address.path)")
            close(fd)
            throw e
        }
        guard bound == 0 else {
            let e = UnixError.call("bind \(address.path)")
            close(fd)
            throw e
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let e = UnixError.call("listen \(address.path)")
            close(fd)
            throw e
        }
        return fd
    }

    /// The next connection on `listener`, close-on-exec; EINTR is retried.
    public static func accept(_ listener: CInt, nonBlocking: Bool = false) throws(UnixError) -> CInt {
        var flags = CInt(SOCK_CLOEXEC.rawValue)
        if nonBlocking { flags |= CInt(SOCK_NONBLOCK.rawValue) }
        while true {
            let fd = uspAccept4(listener, nil, nil, flags)
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            throw .call("accept")
        }
    }

    /// A socket connected to `address`. With `nonBlocking`, a full backlog is EAGAIN rather than a wait.
    /// ENOENT (no socket file) and ECONNREFUSED (nobody listening) come back as `systemCall` errors
    /// with that errno.
    public static func connect(to address: UnixSocketAddress, nonBlocking: Bool = false) throws(UnixError) -> CInt {
        var type = CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= CInt(SOCK_NONBLOCK.rawValue) }
        let fd = socket(AF_UNIX, type, 0)
        guard fd >= 0 else { throw .call("socket(AF_UNIX)") }
        while true {
            if address.withSockAddr({ Glibc.connect(fd, $0, $1) }) == 0 { return fd }
            if errno == EINTR { continue }
            let e = UnixError.call("connect \(address.path)")
            close(fd)
            throw e
        }
    }

    /// Sets SO_RCVTIMEO and SO_SNDTIMEO on a blocking socket: a read or write that waits longer
    /// fails with `timedOut`.
    public static func setTimeouts(_ fd: CInt, seconds: Double) throws(UnixError) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
            guard setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                throw .call("setsockopt(SO_RCVTIMEO/SO_SNDTIMEO)")
            }
        }
    }

    /// A socket file at `address` that refuses connections.
    static func isStale(_ address: UnixSocketAddress) -> Bool {
        var info = stat()
        guard lstat(address.path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { return false }
        do {
            close(try connect(to: address, nonBlocking: true))
            return false
        } catch {
            return error.errno == ECONNREFUSED
        }
    }
}

/// accept4(2): the accepted socket is close-on-exec from the start. Glibc shows it to Swift only
/// with _GNU_SOURCE, so it is declared here; it has been in glibc since 2.10.
@_silgen_name("accept4")
private func uspAccept4(_ fd: CInt, _ address: UnsafeMutablePointer<sockaddr>?, _ length: UnsafeMutablePointer<socklen_t>?,
                        _ flags: CInt) -> CInt
