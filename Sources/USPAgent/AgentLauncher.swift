import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import USPClient
import USPUnix

/// `usp agent start`: runs this program again as the agent, as a daemon (a session of its own,
/// stdin and stdout on /dev/null, stderr to HOME/agent.err, no descriptor of ours), and waits
/// until it answers a status request on HOME/agent.sock with its pid. Its events go to
/// HOME/agent.log as always; agent.err gets only what is not an event: a refusal to start, a crash.
public struct AgentLauncher: Sendable {
    public let home: ClientHome
    /// The agent's command line, argv[0] first; the program is this process's own executable.
    public let arguments: [String]
    /// What the agent writes before its error line on stderr; `start` drops it from the error it throws.
    public let errorPrefix: String
    public var timeout: Double = 5

    public init(home: ClientHome, arguments: [String], errorPrefix: String) {
        self.home = home
        self.arguments = arguments
        self.errorPrefix = errorPrefix
    }

    public var errorLogPath: String { home.directory + "/agent.err" }
    public var socket: AgentSocketPath { .of(home: home) }

    /// Starts the agent; returns its pid once it answers. If it exits first, the error is its
    /// own line from agent.err; if it does not answer in time, it is stopped and the error says so.
    public func start() throws(AgentError) -> pid_t {
        let executable = try Self.ownExecutable()
        let errorLog = open(errorLogPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard errorLog >= 0 else { throw AgentError(.systemCall, "cannot open \(errorLogPath): \(String(cString: strerror(errno)))") }
        defer { close(errorLog) }
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        guard null >= 0 else { throw AgentError(.systemCall, "cannot open /dev/null: \(String(cString: strerror(errno)))") }
        defer { close(null) }
        var environment = ProcessInfo.processInfo.environment
        // Not the agent's: a service manager's sockets and notification socket are ours, if any.
        for name in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"] { environment[name] = nil }
        var spawn = ProcessSpawn(path: executable, arguments: arguments, environment: environment)
        spawn.standardOutput = null
        spawn.standardError = errorLog
        spawn.newSession = true
        let pid: pid_t
        do throws(UnixError) { pid = try spawn.run() } catch { throw AgentError(.startFailed, "cannot start the agent: \(error.detail)") }
        try waitUntilAnswering(pid)
        return pid
    }

    private func waitUntilAnswering(_ pid: pid_t) throws(AgentError) {
        let client = AgentClient(socket: socket)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var status: CInt = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                let why = lastLine(of: errorLogPath) ?? "it wrote nothing to \(errorLogPath)"
                throw AgentError(.startFailed, "the agent \(ProcessExit(waitStatus: status)) before it listened: \(why)")
            }
            // Answering a status request, the agent has logged `started` and accepts. An unsafe
            // socket place makes the agent itself exit with its line: keep waiting for that; and
            // another agent that answers makes ours exit with already_running.
            if let fd = try? client.connect(), let status = try? client.status(on: fd), status.pid == pid { return }
            usleep(20_000)
        }
        kill(pid, SIGTERM)
        throw AgentError(.startFailed, "the agent (pid \(pid)) did not answer on \(socket.path) within \(Int(timeout)) s and was stopped; see \(errorLogPath) and \(home.directory)/agent.log")
    }

    /// The last non-empty line of a small text file, without `errorPrefix`.
    private func lastLine(of path: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let line = text.split(separator: "\n").last else { return nil }
        return line.hasPrefix(errorPrefix) ? String(line.dropFirst(errorPrefix.count)) : String(line)
    }

    /// This program's path (execve does not search PATH, and argv[0] may be relative).
    static func ownExecutable() throws(AgentError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { throw AgentError(.systemCall, "cannot find the usp executable: readlink /proc/self/exe: \(String(cString: strerror(errno)))") }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
