import ArgumentParser
import Foundation
import Glibc
import USPAgent
import USPClient
import USPCore

/// `usp`: the USP client. Each command parses its arguments and calls USPClient; a failure is
/// one line on stderr, `usp: <what failed and what to do>`, and exit status 1 (64 for usage).
@main
struct USP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usp",
        abstract: "Client for the Universal Session Protocol.",
        discussion: """
            State lives in ~/.usp, or in $USP_HOME, or in --home DIR: identity (the client's key), \
            known_servers (server keys, trusted on first use), tokens/ (saved logins).
            """,
        version: "0.1.0",
        subcommands: [Keygen.self, Genkey.self, Pubkey.self, Menu.self, Login.self, Connect.self, Forward.self,
                      Logout.self, Revoke.self, KnownServersCommand.self, AgentCommand.self])

    /// `--home DIR` is global: `usp --home DIR menu URI` works as `usp menu URI --home DIR`.
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.isEmpty {
            // Nothing asked: the usage, and a failure status (a script that forgot its arguments must notice).
            FileHandle.standardError.write(Data((helpMessage() + "\n").utf8))
            Glibc.exit(64)
        }
        var moved: [String] = []
        while let first = arguments.first, first == "--home" || first.hasPrefix("--home=") {
            moved.append(arguments.removeFirst())
            if first == "--home", !arguments.isEmpty { moved.append(arguments.removeFirst()) }
        }
        if !moved.isEmpty, let terminator = arguments.firstIndex(of: "--") {
            arguments.insert(contentsOf: moved, at: terminator)
        } else {
            arguments += moved
        }
        await main(arguments)
    }
}

// MARK: - Shared options

struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("State directory (default: $USP_HOME or ~/.usp).", valueName: "dir"))
    var home: String?

    var clientHome: ClientHome { ClientHome.resolve(explicit: home) }
}

struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("What to do with a server not in known_servers: strict, accept-new (trust on first use), no.",
                                            valueName: "mode"))
    var serverKeyChecking: String = "accept-new"

    @Flag(name: .long, help: "Do not show the client's key to the server (NK instead of IK).")
    var anonymous = false

    @Flag(name: .long, help: "Do not look the server's key (TXT) and port (SRV) up in DNS at _usp._tcp.HOST.")
    var noDns = false

    @Flag(name: .long, help: "Accept a server key from DNS only if the resolver validated the answer with DNSSEC (the AD bit); refuse otherwise.")
    var dnsRequireDnssec = false

    @Option(name: .long, help: ArgumentHelp("Ask this resolver for DNS records instead of the system's (IPv4:PORT or IPv4).", valueName: "ip:port"))
    var dnsServer: String?

    func options() throws -> USPConnectionOptions {
        guard let mode = KnownServers.Mode(text: serverKeyChecking) else {
            throw ValidationError("--server-key-checking must be strict, accept-new or no, not \"\(serverKeyChecking)\"")
        }
        var o = USPConnectionOptions()
        o.serverKeyChecking = mode
        o.anonymous = anonymous
        o.onNewServerKey = { printError($0) }
        o.dns.enabled = !noDns
        o.dns.requireDNSSEC = dnsRequireDnssec
        if noDns, dnsRequireDnssec { throw ValidationError("--no-dns and --dns-require-dnssec contradict each other") }
        if let text = dnsServer {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            var address = in_addr()
            guard parts.count <= 2, inet_pton(AF_INET, String(parts[0]), &address) == 1,
                  let port = parts.count == 2 ? Int(parts[1]) : 53, (1...65535).contains(port) else {
                throw ValidationError("--dns-server \(text): expected an IPv4 address with an optional port, as 127.0.0.1:5353")
            }
            o.dns.server = (String(parts[0]), port)
        }
        return o
    }
}

/// Runs a command body: a USPClientError becomes `usp: message` and exit 1 (64 for bad arguments).
func reporting(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let e as USPClientError {
        printError(e.message)
        throw ExitCode(e.code == .invalidArgument || e.code == .invalidURI ? 64 : 1)
    } catch let e as AgentError {
        printError("agent: \(e.message) (\(e.code))")
        throw ExitCode(e.code == .invalidArgument ? 64 : 1)
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data("usp: \(line)\n".utf8))
}

/// `usp://[KEY@]host[:port]`, or a bare `host[:port]`.
func parseURI(_ text: String) throws -> ServerURI {
    try ServerURI(parsingLoosely: text)
}

// MARK: - Keys

struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create the client's identity key and print its public key (alone on stdout; the path and fingerprint go to stderr).")
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
    static let configuration = CommandConfiguration(abstract: "Print a new private key (base64url), as `wg genkey` does: usp genkey | tee key | usp pubkey")
    func run() async throws {
        print(KeyText.encode(KeyText.generate().privateKey))
    }
}

struct Pubkey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read a private key on stdin and print its public key.")
    func run() async throws {
        try await reporting {
            let input = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            let key = try KeyText.privateKey(input, source: "standard input")
            print(KeyText.encode(key.publicKey))
        }
    }
}
