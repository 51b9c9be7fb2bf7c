#if canImport(Glibc)
import Glibc
#endif

/// Who is at the other end of a connected AF_UNIX socket (SO_PEERCRED): the process, user and
/// group as they were when it called connect (or socketpair).
public struct PeerCredentials: Hashable, Sendable {
    public var pid: pid_t
    public var uid: uid_t
    public var gid: gid_t

    public init(pid: pid_t, uid: uid_t, gid: gid_t) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    /// The credentials of `socket`'s peer.
    public static func of(_ socket: CInt) throws(UnixError) -> PeerCredentials {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }: Glibc hides it without _GNU_SOURCE.
        var raw: (pid_t, uid_t, gid_t) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(pid_t, uid_t, gid_t)>.size)
        guard getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &raw, &length) == 0 else { throw .call("getsockopt(SO_PEERCRED)") }
        return PeerCredentials(pid: raw.0, uid: raw.1, gid: raw.2)
    }
}
