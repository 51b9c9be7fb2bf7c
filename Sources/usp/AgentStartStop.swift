import ArgumentParser
import Glibc
import USPAgent
import USPUnix

extension AgentCommand {
    /// `usp agent start`: the agent in the background, as ssh-agent starts.
    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "start",
            abstract: "Start the agent in the background and return once it answers.",
            discussion: "The agent runs in a session of its own with HOME/agent.err as stderr (a refusal to start, a crash) and logs to HOME/agent.log. Prints one line with its pid and socket. If an agent already answers on HOME/agent.sock, says so and exits 0.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var agent: AgentOptions

        func run() async throws {
            try await reporting {
                let home = global.clientHome
                try home.prepare()
                let launcher = AgentLauncher(home: home, arguments: ["usp", "--home", home.directory, "agent", "run", "--quiet"] + agent.arguments,
                                             errorPrefix: "usp: agent: ")
                let client = AgentClient(socket: launcher.socket)
                if let fd = try client.connect() {
                    let pid = try client.status(on: fd).pid.map { "pid \($0)" } ?? "pid unknown"
                    print("agent already running (\(pid)) on \(client.socket.path)")
                    return
                }
                let pid = try launcher.start()
                print("agent started (pid \(pid)) on \(client.socket.path)")
            }
        }
    }

    /// `usp agent stop`: SIGTERM to the agent whose status answer names its pid.
    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stop",
            abstract: "Stop the running agent and wait until it is gone.",
            discussion: "Asks the agent on the socket clients use ($USP_AGENT_SOCK or HOME/agent.sock) for its pid, sends it SIGTERM and waits up to 5 s. Exits 1 (not_running) when no agent answers. Under systemd, the socket stays and the next client starts the agent again: use systemctl --user stop usp-agent.socket usp-agent.service.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await reporting {
                let client = AgentClient(socket: .resolve(home: global.clientHome))
                guard let fd = try client.connect() else { throw AgentError(.notRunning, "no agent is running on \(client.socket.path)") }
                guard let pid = try client.status(on: fd).pid, pid > 0 else {
                    throw AgentError(.protocolViolation, "the agent on \(client.socket.path) did not say its pid; stop it with kill")
                }
                guard kill(pid, SIGTERM) == 0 else {
                    throw AgentError(.systemCall, "cannot signal the agent (pid \(pid)): \(String(cString: strerror(errno)))")
                }
                guard ProcessLiveness.waitUntilGone(pid, timeout: 5) else {
                    throw AgentError(.timedOut, "the agent (pid \(pid)) still runs 5 s after SIGTERM")
                }
                print("agent stopped (pid \(pid))")
            }
        }
    }
}
