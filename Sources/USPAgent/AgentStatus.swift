#if canImport(Glibc)
import Glibc
#endif

/// The answer to `status`: the agent's process and the streams it relays now. `usp agent stop`
/// signals `pid` (a connection's SO_PEERCRED would name systemd, not the agent, when systemd
/// made the listening socket).
public struct AgentStatus: Hashable, Sendable {
    /// The agent's process ID; nil from an agent that does not say it.
    public var pid: pid_t?
    public var streams: [AgentStreamInfo]

    public init(pid: pid_t?, streams: [AgentStreamInfo]) {
        self.pid = pid
        self.streams = streams
    }
}
