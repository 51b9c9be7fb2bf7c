#if canImport(Glibc)
import Glibc
#endif
import USPUnix

/// systemd's socket-activation convention as uspd uses it for `stream = "fd3"`: LISTEN_FDS=1,
/// LISTEN_PID the process's own pid, LISTEN_FDNAMES=usp, the stream on fd 3.
public enum SocketActivation {
    /// The first passed descriptor (SD_LISTEN_FDS_START).
    public static let firstDescriptor: CInt = 3

    /// fd 3 when `environment` says it was passed to this process (LISTEN_PID is ours,
    /// LISTEN_FDS is 1 or more, and LISTEN_FDNAMES, when set, names it `usp`); else nil.
    public static func streamDescriptor(environment: [String: String], pid: pid_t = getpid()) -> CInt? {
        guard let listenPID = environment["LISTEN_PID"].flatMap({ pid_t($0) }), listenPID == pid,
              let count = environment["LISTEN_FDS"].flatMap({ Int($0) }), count >= 1 else { return nil }
        if let names = environment["LISTEN_FDNAMES"], names.split(separator: ":").first != "usp" { return nil }
        return firstDescriptor
    }

    /// Removes LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, so that children do not take them as theirs.
    public static func unsetEnvironment() {
        Systemd.unsetListenEnvironment()
    }
}
