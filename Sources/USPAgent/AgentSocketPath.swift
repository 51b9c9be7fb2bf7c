import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import USPClient
import USPUnix

/// Where the agent listens: `$USP_AGENT_SOCK` if set (clients only, like `SSH_AUTH_SOCK`), else
/// `agent.sock` in the client home. Both the agent and its clients check the place before they
/// use it: the directory must belong to the user (or root) and not be writable by group or
/// others, and a socket file there must be a socket of the user's own. Otherwise another user
/// could stand in for the agent, or replace it.
public struct AgentSocketPath: Hashable, Sendable, CustomStringConvertible {
    public let path: String

    public init(path: String) { self.path = path }

    public static func of(home: ClientHome) -> AgentSocketPath { AgentSocketPath(path: home.directory + "/agent.sock") }

    /// For clients: `USP_AGENT_SOCK`, else the home's `agent.sock`.
    /// `environment` replaces the process's (tests).
    public static func resolve(home: ClientHome, environment: [String: String]? = nil) -> AgentSocketPath {
        if let explicit = EnvironmentVariable.lookup(environment)("USP_AGENT_SOCK"), !explicit.isEmpty { return AgentSocketPath(path: explicit) }
        return of(home: home)
    }

    public var description: String { path }
    /// The directory part of `path` (as `dirname` gives it: "." for a bare name, "/" for a file in /).
    public var directory: String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let dir = path[..<slash].reversed().drop { $0 == "/" }.reversed()
        return dir.isEmpty ? (path.hasPrefix("/") ? "/" : ".") : String(dir)
    }

    /// The directory exists, belongs to this user or root, and others cannot write it.
    public func checkDirectory(uid: uid_t = geteuid()) throws(AgentError) {
        var info = stat()
        guard stat(directory, &info) == 0 else {
            throw AgentError(.unsafeSocket, "\(directory): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw AgentError(.unsafeSocket, "\(directory) is not a directory") }
        guard info.st_uid == uid || info.st_uid == 0 else {
            throw AgentError(.unsafeSocket, "\(directory) belongs to uid \(info.st_uid), not to you (uid \(uid)); refusing the agent socket \(path)")
        }
        guard info.st_mode & 0o022 == 0 else {
            throw AgentError(.unsafeSocket, "\(directory) is writable by \(info.st_mode & 0o002 != 0 ? "others" : "its group") (mode \(String(info.st_mode & 0o7777, radix: 8))); refusing the agent socket \(path): chmod go-w \(directory)")
        }
    }

    /// Whether a file is at `path`; if one is, it must be a socket of this user's.
    public func checkSocketFile(uid: uid_t = geteuid()) throws(AgentError) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return false }
            throw AgentError(.unsafeSocket, "\(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFSOCK else { throw AgentError(.unsafeSocket, "\(path) exists and is not a socket") }
        guard info.st_uid == uid else {
            throw AgentError(.unsafeSocket, "the agent socket \(path) belongs to uid \(info.st_uid), not to you (uid \(uid)); refusing to use it")
        }
        return true
    }

    public var address: UnixSocketAddress {
        get throws(AgentError) {
            do throws(UnixError) { return try UnixSocketAddress(path: path) } catch { throw AgentError(.unsafeSocket, error.detail) }
        }
    }
}
