#if canImport(Glibc)
import Glibc
#endif
import USPCore
import USPUnix

/// The local program at the other end of an agent connection: SO_PEERCRED's uid, gid and pid,
/// and the executable `/proc/PID/exe` points to (read right after accept; "unknown" when the
/// kernel does not say, e.g. a process of another user seen by an unprivileged agent).
public struct PeerProgram: Hashable, Sendable {
    public var uid: uid_t
    public var gid: gid_t
    public var pid: pid_t
    public var executable: String

    public init(uid: uid_t, gid: gid_t, pid: pid_t, executable: String) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.executable = executable
    }

    public static func of(_ socket: CInt) throws(UnixError) -> PeerProgram {
        let c = try PeerCredentials.of(socket)
        return PeerProgram(uid: c.uid, gid: c.gid, pid: c.pid, executable: executable(of: c.pid))
    }

    static func executable(of pid: pid_t) -> String {
        ProcessExecutable.path(of: pid) ?? "unknown"
    }

    /// For log lines and status.
    public var json: [String: JSONValue] {
        ["uid": .integer(Int64(uid)), "pid": .integer(Int64(pid)), "executable": .string(executable)]
    }

    public var description: String { "pid \(pid) (\(executable), uid \(uid))" }
}
