import ArgumentParser
import FoundationEssentials
import Glibc
import USPAgent
import USPClient
import USPCore
import USPUnix

/// `usp agent`: run the client agent in the foreground; `usp agent status`: what it relays.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent", abstract: "Run the client agent (in the foreground or in the background), stop it, or ask it for its open streams.",
        discussion: "The agent listens on HOME/agent.sock (mode 0600), holds the identity key and saved logins, and hands local programs of the same user connected descriptors to applications. usp connect and usp forward use it when it runs.",
        subcommands: [Run.self, Start.self, Stop.self, Status.self], defaultSubcommand: Run.self)

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run", abstract: "Run the agent in the foreground (the default).",
            discussion: "Started by systemd with a listening socket (LISTEN_FDS, usp-agent.socket), it serves on that socket instead of making HOME/agent.sock; with NOTIFY_SOCKET it sends READY=1 once listening and STOPPING=1 when asked to stop (Type=notify).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var agent: AgentOptions
        @Flag(name: .long, help: "Log events only to HOME/agent.log, not also to stderr.")
        var quiet = false

        func run() async throws {
            try await reporting {
                // First, so that LISTEN_* are gone even when something below fails.
                let inherited = try InheritedAgentSocket.fromServiceManager()
                let home = global.clientHome
                try home.prepare()
                var c = try agent.configuration(home: home)
                c.inherited = inherited
                // SIGTERM, SIGINT and SIGHUP stop the agent; their handlers are in place before
                // the socket exists, so none sent once a client can connect is lost.
                c.stopSignals = [SIGTERM, SIGINT, SIGHUP]
                let log = try AgentLog(path: home.directory + "/agent.log", toStderr: !quiet)
                let server = try AgentServer(configuration: c, log: log)
                if !quiet { printError("agent listening on \(server.configuration.socket.path) (log \(log.path))") }
                Systemd.notify("READY=1")
                await server.run()
                Systemd.notify("STOPPING=1")
                // The end: relays still open end with the process, at once, on this thread (not
                // after one more hop through the task scheduler).
                Glibc.exit(0)
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "List the streams the agent relays now.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            try await reporting {
                let client = AgentClient(socket: .resolve(home: global.clientHome))
                guard let fd = try client.connect() else {
                    throw AgentError(.notRunning, "no agent is running on \(client.socket.path); start one with usp agent start")
                }
                let streams = try client.status(on: fd).streams
                if json {
                    let data = try JSONValue.array(streams.map(\.json)).encoded()
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    print(Self.table(streams), terminator: "")
                }
            }
        }

        static func table(_ streams: [AgentStreamInfo]) -> String {
            guard !streams.isEmpty else { return "no open streams\n" }
            let header = ["STREAM", "PID", "PROGRAM", "SERVER", "APPLICATION", "TOKEN", "SENT", "RECEIVED", "AGE"]
            let rows = streams.map { s in
                ["\(s.stream)", "\(s.program.pid)", s.program.executable + (s.program.via.map { " (via usp, pid \($0.pid))" } ?? ""), s.server, s.application, s.tokenID ?? "-",
                 "\(s.bytesSent)", "\(s.bytesReceived)", "\(Int(s.age))s"]
            }
            return TextTable.render(header, rows)
        }
    }
}

/// `--no-agent`, and the agent `usp connect`/`usp forward` use when it runs.
struct AgentChoice: ParsableArguments {
    @Flag(name: .long, help: "Connect directly even if the agent runs (the agent is used when HOME/agent.sock answers).")
    var noAgent = false

    /// `--no-agent` as a configuration setting (`UseAgent no`), which wins over the file's.
    func settings() -> [ClientConfig.Setting] {
        noAgent ? [.init(.useAgent, .flag(false), origin: .commandLine("--no-agent"))] : []
    }

    /// The agent's client and a connection to it when one answers, nil otherwise (or when the
    /// target's settings say UseAgent no, or Anonymous yes, which the agent does not do). An
    /// agent socket of another user is refused with an error, never used.
    func connection(for target: ServerTarget) throws -> (AgentClient, CInt)? { try Self.connection(for: target) }

    /// As `connection(for:)`, for a command whose `--no-agent` is already among the target's settings.
    static func connection(for target: ServerTarget) throws -> (AgentClient, CInt)? {
        guard target.settings.useAgent, !target.settings.anonymous else { return nil }
        let client = AgentClient(socket: .resolve(home: target.home))
        guard let fd = try client.connect() else { return nil }
        return (client, fd)
    }

    /// The agent's client when one answers (the probe connection is closed unused, which the
    /// agent does not log).
    func agent(for target: ServerTarget) throws -> AgentClient? {
        guard let (client, fd) = try connection(for: target) else { return nil }
        close(fd)
        return client
    }
}
