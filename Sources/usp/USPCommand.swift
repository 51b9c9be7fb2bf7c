import ArgumentParser
import Dispatch
import FoundationEssentials
import Glibc
import USPAgent
import USPClient
import USPCore

/// `usp`: the USP client. Each command parses its arguments and calls USPClient; a failure is
/// one line on stderr, `usp: <what failed and what to do>`, and exit status 1 (64 for usage).
struct USP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usp",
        abstract: "Client for the Universal Session Protocol.",
        discussion: """
            usp connects to a uspd server: every byte is encrypted from the first one (a Noise \
            handshake), and the server key is trusted on first use and pinned afterwards, as ssh \
            does. usp menu lists the applications, usp login saves a login, usp connect bridges \
            stdin and stdout to an application (an ssh ProxyCommand, say), usp forward serves one \
            on a local port, and usp agent hands local programs streams without handing them \
            credentials. Every SERVER argument is an alias of the config, host[:port] or \
            usp://[KEY@]host[:port]; -F FILE and -o Keyword=Value work as ssh's.

            FILES: state lives in ~/.usp, or in $USP_HOME, or in --home DIR: identity (the \
            client's key), known_servers (server keys, trusted on first use), tokens/ (saved \
            logins), config (host aliases, ssh_config syntax: usp config show ALIAS), agent.sock \
            and agent.log (usp agent).

            ENVIRONMENT: USP_HOME, the state directory when --home is not given. \
            USP_AGENT_SOCK, the agent's socket when it is not HOME/agent.sock.

            EXIT STATUS: 0 on success, 1 when the command fails (one line on stderr, usp: ...), \
            64 on a usage error.
            """,
        version: "0.1.0",
        subcommands: [Keygen.self, Genkey.self, Pubkey.self, Menu.self, Login.self, Connect.self, Forward.self,
                      Broker.self, Logout.self, Revoke.self, KnownServersCommand.self, LoginsCommand.self, ConfigCommand.self, AgentCommand.self])

    /// `--home DIR`, `-F FILE` and `-o K=V` are global: `usp --home DIR menu URI` works as
    /// `usp menu URI --home DIR`. Returns the arguments with `-oKey=Value` and `-FFILE` split and
    /// the global options moved after the command.
    static func normalized(_ given: [String]) -> [String] {
        var arguments = given
        // -oKey=Value and -FFILE, joined as ssh allows, become two arguments (before any --).
        let end = arguments.firstIndex(of: "--") ?? arguments.endIndex
        arguments = arguments[..<end].flatMap { a in
            (a.hasPrefix("-o") || a.hasPrefix("-F")) && a.count > 2 && !a.hasPrefix("--") ? [String(a.prefix(2)), String(a.dropFirst(2))] : [a]
        } + arguments[end...]
        var moved: [String] = []
        // --home, -F and -o before the command move after it (usp -F FILE connect ALIAS, as ssh -F).
        while let first = arguments.first, first.hasPrefix("--home=") || first.hasPrefix("-F") || first.hasPrefix("-o") || first == "--home" {
            moved.append(arguments.removeFirst())
            if ["--home", "-F", "-o"].contains(first), !arguments.isEmpty { moved.append(arguments.removeFirst()) }
        }
        if !moved.isEmpty, let terminator = arguments.firstIndex(of: "--") {
            arguments.insert(contentsOf: moved, at: terminator)
        } else {
            arguments += moved
        }
        return arguments
    }
}

/// The program's entry: synchronous, so that the common `usp connect` (`ConnectInvocation`,
/// `StdioPollSession`) runs and exits on the main thread alone. An `async` main hands the main
/// thread to Dispatch (`dispatchMain`), whose worker and manager threads then start in every run:
/// about a tenth of a short connection's CPU. Everything else runs as before, on Swift
/// concurrency, started here only when it is needed.
@main
enum USPEntry {
    static func main() {
        let given = Array(CommandLine.arguments.dropFirst())
        if given.isEmpty {
            // Nothing asked: the usage, and a failure status (a script that forgot its arguments must notice).
            writeStandardError(USP.helpMessage() + "\n")
            Glibc.exit(64)
        }
        let arguments = USP.normalized(given)
        // The common `usp connect` forms skip ArgumentParser (see ConnectInvocation).
        if arguments.first == "connect", let connect = ConnectInvocation.parse(arguments.dropFirst()) {
            let step: ConnectInvocation.Step
            do {
                step = try connect.runOnThisThread()
            } catch {
                USP.exit(withError: error)
            }
            if case .done = step { Glibc.exit(0) }
            runAsync {
                do {
                    try await connect.finish(step)
                } catch {
                    USP.exit(withError: error)
                }
            }
        }
        runAsync { await USP.main(arguments) }
    }

    /// Runs `body` as a task, the main thread serving the main queue meanwhile, and exits 0 when it
    /// returns (a failure exits from within, with its status).
    private static func runAsync(_ body: @escaping @Sendable () async -> Void) -> Never {
        Task {
            await body()
            Glibc.exit(0)
        }
        dispatchMain()
    }
}

// MARK: - Shared options

struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("State directory (default: $USP_HOME or ~/.usp).", valueName: "dir"))
    var home: String?

    var clientHome: ClientHome { ClientHome.resolve(explicit: home) }
}

struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("What to do with a server not in known_servers: strict, accept-new (trust on first use, the default), no.",
                                            valueName: "mode"))
    var serverKeyChecking: String?

    @Flag(name: .long, help: "Do not show the client's key to the server (NK instead of IK).")
    var anonymous = false

    @Flag(name: .long, help: "Do not look the server's key (TXT) and port (SRV) up in DNS at _usp._tcp.HOST.")
    var noDns = false

    @Flag(name: .long, help: "Accept a server key from DNS only if the resolver validated the answer with DNSSEC (the AD bit); refuse otherwise.")
    var dnsRequireDnssec = false

    @Option(name: .long, help: ArgumentHelp("Ask this resolver for DNS records instead of the system's (IPv4:PORT or IPv4).", valueName: "ip:port"))
    var dnsServer: String?

    @OptionGroup var config: ConfigOptions

    /// The flags as plain values.
    var flags: ConnectionFlags {
        ConnectionFlags(serverKeyChecking: serverKeyChecking, anonymous: anonymous, noDns: noDns, dnsRequireDnssec: dnsRequireDnssec, dnsServer: dnsServer)
    }

    /// The flags given, as configuration settings (they win over -o and the file).
    func settings() throws -> [ClientConfig.Setting] { try flags.settings() }
}

/// ConnectionOptions' flags as plain values: what ArgumentParser parsed, or what
/// `ConnectInvocation.parse` read without it.
struct ConnectionFlags: Equatable {
    var serverKeyChecking: String?
    var anonymous = false
    var noDns = false
    var dnsRequireDnssec = false
    var dnsServer: String?

    /// As configuration settings (they win over -o and the file).
    func settings() throws -> [ClientConfig.Setting] {
        var s: [ClientConfig.Setting] = []
        if let v = serverKeyChecking { s.append(try ClientConfig.commandLine(.serverKeyChecking, v, flag: "--server-key-checking")) }
        if anonymous { s.append(.init(.anonymous, .flag(true), origin: .commandLine("--anonymous"))) }
        if noDns { s.append(.init(.dns, .flag(false), origin: .commandLine("--no-dns"))) }
        if dnsRequireDnssec { s.append(.init(.requireDNSSEC, .flag(true), origin: .commandLine("--dns-require-dnssec"))) }
        if let v = dnsServer { s.append(try ClientConfig.commandLine(.dnsServer, v, flag: "--dns-server")) }
        return s
    }
}

/// Runs a command body: a USPClientError becomes `usp: message` and exit 1 (64 for bad arguments).
func reporting(_ body: () async throws -> Void) async throws {
    do { try await body() } catch { throw reported(error) }
}

/// `reporting` for synchronous work.
func reportingNow(_ body: () throws -> Void) throws {
    do { try body() } catch { throw reported(error) }
}

/// Prints a USPClientError or AgentError as one line and turns it into the exit status; any
/// other error is passed on as it is.
private func reported(_ error: any Error) -> any Error {
    if let e = error as? USPClientError {
        printError(e.message)
        return ExitCode(e.code == .invalidArgument || e.code == .invalidURI ? 64 : 1)
    }
    if let e = error as? AgentError {
        printError("agent: \(e.message) (\(e.code))")
        return ExitCode(e.code == .invalidArgument ? 64 : 1)
    }
    return error
}

func printError(_ line: String) {
    writeStandardError("usp: \(line)\n")
}

// MARK: - Keys

struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keygen", abstract: "Create the client's identity key and print its public key (alone on stdout; the path and fingerprint go to stderr).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Replace an existing identity key.")
    var force = false

    func run() async throws {
        try await reporting {
            let home = global.clientHome
            let key = KeyText.generate()
            try home.writeIdentity(key, overwrite: force)
            // stdout is the key alone, so `uspd user add NAME --key "$(usp keygen)"` works.
            print(KeyText.encode(key.publicKey))
            printError("identity \(home.identityPath), fingerprint \(KeyText.fingerprint(key.publicKey))")
        }
    }
}

struct Genkey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "genkey", abstract: "Print a new private key (base64url), as `wg genkey` does: usp genkey | tee key | usp pubkey")
    func run() async throws {
        print(KeyText.encode(KeyText.generate().privateKey))
    }
}

struct Pubkey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pubkey", abstract: "Read a private key on stdin and print its public key.")
    func run() async throws {
        try await reporting {
            let input = String(decoding: readStandardInput(), as: UTF8.self)
            let key = try KeyText.privateKey(input, source: "standard input")
            print(KeyText.encode(key.publicKey))
        }
    }
}

/// Writes `text` to stderr whole (a line is never interleaved with another writer's by halves).
func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        if n < 0, errno == EINTR { continue }
        guard n > 0 else { return }
        bytes = bytes.dropFirst(n)
    }
}

/// All of stdin, to its end.
func readStandardInput() -> [UInt8] {
    var all: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
        if n < 0, errno == EINTR { continue }
        guard n > 0 else { return all }
        all += chunk[..<n]
    }
}
