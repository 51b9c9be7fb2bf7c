import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The two pieces of systemd the daemon uses: socket activation (`LISTEN_FDS`/`LISTEN_PID`,
/// descriptors from 3) and readiness (`Type=notify`: `READY=1` to `$NOTIFY_SOCKET`).
enum Systemd {
    /// The listening descriptors systemd passed to this process, if any (and only to this process).
    static func inheritedSockets() -> [CInt] {
        let env = ProcessInfo.processInfo.environment
        guard let count = env["LISTEN_FDS"].flatMap(Int.init), count > 0,
              env["LISTEN_PID"].flatMap(Int32.init) == getpid() else { return [] }
        let fds = (0..<count).map { CInt(3 + $0) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDNAMES")
        return fds
    }

    /// Sends `state` (e.g. "READY=1") to the service manager; does nothing outside systemd.
    static func notify(_ state: String) {
        guard var path = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"], !path.isEmpty else { return }
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
