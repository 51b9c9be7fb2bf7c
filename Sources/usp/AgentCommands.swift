import ArgumentParser
import Dispatch
import Foundation
import Glibc
import USPAgent
import USPClient
import USPCore

/// `usp agent`: run the client agent in the foreground; `usp agent status`: what it relays.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent", abstract: "Run the client agent, or ask it for its open streams.",
        discussion: "The agent listens on HOME/agent.sock (mode 0600), holds the identity key and saved logins, and hands local programs of the same user connected descriptors to applications. usp connect and usp forward use it when it runs.",
        subcommands: [Run.self, Status.self], defaultSubcommand: Run.self)

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the agent in the foreground (the default).")
        @OptionGroup var global: GlobalOptions
        @Option(name: .long, help: ArgumentHelp("Opens allowed per program (uid and executable): N/s, N/min or N/h.", valueName: "rate"))
        var rate: String = AgentRateLimiter.Rate.default.description
        @Option(name: .long, help: "Opens a program may make at once before the rate applies.")
        var burst: Int = 10
        @Option(name: .long, help: ArgumentHelp("Servers not in known_servers: strict (default: programs cannot add trust), accept-new, no.",
                                                valueName: "mode"))
        var serverKeyChecking: String = "strict"

        func validate() throws {
            guard (1...100_000).contains(burst) else { throw ValidationError("--burst must be from 1 to 100000") }
            do { _ = try AgentRateLimiter.Rate(parsing: rate) } catch { throw ValidationError(error.message) }
            guard KnownServers.Mode(text: serverKeyChecking) != nil else {
                throw ValidationError("--server-key-checking must be strict, accept-new or no, not \"\(serverKeyChecking)\"")
            }
        }

        func run() async throws {
            try await reporting {
                let home = global.clientHome
                try home.prepare()
                var c = AgentServer.Configuration(home: home)
                c.rate = try AgentRateLimiter.Rate(parsing: rate)
                c.burst = burst
                c.connection.serverKeyChecking = KnownServers.Mode(text: serverKeyChecking) ?? .strict
                let log = try AgentLog(path: home.directory + "/agent.log")
                let server = try AgentServer(configuration: c, log: log)
                // Handlers before the line that says the agent is up, so a prompt SIGTERM still
                // removes the socket.
                let signals = [SIGTERM, SIGINT, SIGHUP].map { sig in
                    signal(sig, SIG_IGN)
                    let source = DispatchSource.makeSignalSource(signal: sig)
                    source.setEventHandler { server.stop() }
                    source.resume()
                    return source
                }
                printError("agent listening on \(c.socket.path) (log \(log.path))")
                await server.run()
                signals.forEach { $0.cancel() }
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the streams the agent relays now.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            try await reporting {
                let client = AgentClient(socket: .resolve(home: global.clientHome))
                guard let fd = try client.connect() else {
                    throw AgentError(.notRunning, "no agent is running on \(client.socket.path); start one with usp agent")
                }
                let streams = try client.status(on: fd)
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
                ["\(s.stream)", "\(s.program.pid)", s.program.executable, s.server, s.application, s.tokenID ?? "-",
                 "\(s.bytesSent)", "\(s.bytesReceived)", "\(Int(s.age))s"]
            }
            var widths = header.map(\.count)
            for r in rows { for (i, cell) in r.enumerated() { widths[i] = max(widths[i], cell.count) } }
            func line(_ cells: [String]) -> String {
                cells.enumerated().map { i, cell in i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                    .joined(separator: "  ") + "\n"
            }
            return ([header] + rows).map(line).joined()
        }
    }
}

/// `--no-agent`, and the agent `usp connect`/`usp forward` use when it runs.
struct AgentChoice: ParsableArguments {
    @Flag(name: .long, help: "Connect directly even if the agent runs (the agent is used when HOME/agent.sock answers).")
    var noAgent = false

    /// The agent's client and a connection to it when one answers, nil otherwise (or with
    /// --no-agent). An agent socket of another user is refused with an error, never used.
    func connection(home: ClientHome) throws -> (AgentClient, CInt)? {
        guard !noAgent else { return nil }
        let client = AgentClient(socket: .resolve(home: home))
        guard let fd = try client.connect() else { return nil }
        return (client, fd)
    }

    /// The agent's client when one answers (the probe connection is closed unused, which the
    /// agent does not log).
    func agent(home: ClientHome) throws -> AgentClient? {
        guard let (client, fd) = try connection(home: home) else { return nil }
        close(fd)
        return client
    }
}
