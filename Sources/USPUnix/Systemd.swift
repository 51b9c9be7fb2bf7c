#if canImport(Glibc)
import Glibc
#endif

/// The two pieces of systemd that uspd and `usp agent` use: socket activation
/// (`LISTEN_FDS`/`LISTEN_PID`, descriptors from 3) and readiness (`Type=notify`: `READY=1` and
/// `STOPPING=1` to `$NOTIFY_SOCKET`).
public enum Systemd {
    /// The listening descriptors systemd passed to this process, if any (and only to this
    /// process), close-on-exec from now on. The LISTEN_* variables are removed, so that children
    /// do not take the descriptors as theirs.
    public static func inheritedSockets() -> [CInt] {
        guard let count = EnvironmentVariable.value("LISTEN_FDS").flatMap({ Int($0) }), count > 0,
              EnvironmentVariable.value("LISTEN_PID").flatMap({ pid_t($0) }) == getpid() else { return [] }
        let fds = (0..<count).map { CInt(3 + $0) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        unsetListenEnvironment()
        return fds
    }

    /// Removes LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES.
    public static func unsetListenEnvironment() {
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(name) }
    }

    /// Sends `state` (e.g. "READY=1") to the service manager; does nothing outside systemd.
    public static func notify(_ state: String) {
        guard var path = EnvironmentVariable.value("NOTIFY_SOCKET"), !path.isEmpty else { return }
        if path.hasPrefix("@") { path = "\0" + path.dropFirst() }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let message = Array(state.utf8)
        _ = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, length) }
            }
        }
    }

}
