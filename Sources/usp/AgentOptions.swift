import ArgumentParser
import USPAgent
import USPClient

/// The settings of a running agent, shared by `usp agent run` and `usp agent start` (which passes
/// them on to the agent it starts).
struct AgentOptions: ParsableArguments {
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

    /// The server configuration for `home` with these settings.
    func configuration(home: ClientHome) throws -> AgentServer.Configuration {
        var c = AgentServer.Configuration(home: home)
        c.rate = try AgentRateLimiter.Rate(parsing: rate)
        c.burst = burst
        c.connection.serverKeyChecking = KnownServers.Mode(text: serverKeyChecking) ?? .strict
        return c
    }

    /// The options as arguments again, for the agent `usp agent start` runs.
    var arguments: [String] { ["--rate", rate, "--burst", "\(burst)", "--server-key-checking", serverKeyChecking] }
}
