#if canImport(Glibc)
import Glibc
#endif
import USPUnix

/// The listening socket a service manager made for the agent (`usp-agent.socket`, systemd
/// socket activation), checked before the agent serves on it: one listening AF_UNIX stream
/// socket, bound to a file that is a socket of the agent's user, not writable by group or others,
/// in a directory the agent would accept for its own socket. The agent never removes that file:
/// the service manager made it and keeps listening on it after the agent exits.
public struct InheritedAgentSocket: Sendable {
    public let descriptor: CInt
    public let socket: AgentSocketPath

    /// The socket passed to this process (LISTEN_FDS with LISTEN_PID ours), nil when none was.
    /// The LISTEN_* variables are removed either way once taken.
    public static func fromServiceManager(uid: uid_t = geteuid()) throws(AgentError) -> InheritedAgentSocket? {
        let fds = Systemd.inheritedSockets()
        guard let fd = fds.first else { return nil }
        guard fds.count == 1 else {
            throw AgentError(.invalidSocket, "the service manager passed \(fds.count) sockets (LISTEN_FDS=\(fds.count)); the agent serves on exactly one (one ListenStream= in usp-agent.socket)")
        }
        return try adopt(fd, uid: uid)
    }

    /// Checks `fd` as described above.
    public static func adopt(_ fd: CInt, uid: uid_t = geteuid()) throws(AgentError) -> InheritedAgentSocket {
        let what = "descriptor \(fd) from the service manager (LISTEN_FDS)"
        let description: SocketDescription
        do throws(UnixError) {
            description = try SocketDescription.of(fd)
        } catch {
            switch error.errno {
            case EBADF: throw AgentError(.invalidSocket, "\(what) is not open")
            case ENOTSOCK: throw AgentError(.invalidSocket, "\(what) is not a socket")
            default: throw AgentError(.systemCall, "cannot check \(what): \(error.detail)")
            }
        }
        guard description.domain == AF_UNIX else {
            throw AgentError(.invalidSocket, "\(what) is an \(description.domainName) socket, not AF_UNIX; ListenStream= must name a file such as %h/.usp/agent.sock")
        }
        guard description.type == CInt(SOCK_STREAM.rawValue) else {
            throw AgentError(.invalidSocket, "\(what) is a \(description.typeName) socket, not a stream socket; use ListenStream=")
        }
        guard description.isListening else {
            throw AgentError(.invalidSocket, "\(what) is not listening (a connection, as with Accept=yes); use Accept=no")
        }
        guard let path = description.path else {
            throw AgentError(.invalidSocket, "\(what) is not bound to a file (unnamed or abstract); ListenStream= must name a file such as %h/.usp/agent.sock")
        }
        let socket = AgentSocketPath(path: path)
        try socket.checkDirectory(uid: uid)
        guard try socket.checkSocketFile(uid: uid) else {
            throw AgentError(.unsafeSocket, "the agent socket \(path) of \(what) no longer exists; restart usp-agent.socket")
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { throw AgentError(.unsafeSocket, "\(path): \(String(cString: strerror(errno)))") }
        guard info.st_mode & 0o022 == 0 else {
            let who = info.st_mode & 0o002 != 0 ? "others" : "its group"
            throw AgentError(.unsafeSocket, "the agent socket \(path) is writable by \(who) (mode \(String(info.st_mode & 0o7777, radix: 8))); refusing to serve on it: SocketMode=0600 in usp-agent.socket")
        }
        return InheritedAgentSocket(descriptor: fd, socket: socket)
    }
}
