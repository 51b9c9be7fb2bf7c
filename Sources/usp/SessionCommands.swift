import ArgumentParser
import FoundationEssentials
import Glibc
import USPAgent
import USPClient
import USPCore
import USPUnix

struct Menu: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "menu", abstract: "Show a server's application menu.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The server: an alias of the configuration, host[:port] or usp://[KEY@]host:port") var uri: String
    @Flag(name: .long, help: "Print JSON instead of a table.") var json = false

    func run() async throws {
        try await reporting {
            let target = try ServerTarget(uri, global: global, connection: connection)
            let server = target.server, home = target.home
            let c = try await USPConnection.connectForMenu(to: server, home: home, options: try target.connectionOptions(), notice: printError)
            let menu = try await c.menu()
            let saved = try? home.loadLogin(for: server)
            await c.close()
            if json {
                print(try MenuText.json(menu, connection: c, user: saved?.user))
            } else {
                print(MenuText.table(menu, connection: c, user: saved?.user), terminator: "")
            }
        }
    }
}

enum MenuText {
    static func table(_ menu: ApplicationMenu, connection c: USPConnection, user: String?) -> String {
        var out = "server: \(c.server.hostPort) \(c.serverFingerprint) (\(c.pattern.rawValue.uppercased()))\n"
        switch menu.authentication {
        case .methods(let methods)?:
            out += "login:  not logged in; methods: \(methods.map(\.method).joined(separator: ", "))\n"
        case .tokenInvalidation?:
            out += "login:  logged in" + (user.map { " as \($0)" } ?? "") + "\n"
        case nil:
            out += "login:  none offered\n"
        }
        let rows = menu.applications.sorted { $0.key < $1.key }.map { index, offer in
            [index.key, offer.name, fields(offer.expectedRequestBody), offer.description ?? ""]
        }
        guard !rows.isEmpty else { return out + "no applications\n" }
        return out + TextTable.render(["INDEX", "NAME", "FIELDS", "DESCRIPTION"], rows)
    }

    static func fields(_ spec: [String: String]) -> String {
        spec.isEmpty ? "-" : spec.keys.sorted().map { "\($0):\(spec[$0]!.isEmpty ? "any" : spec[$0]!)" }.joined(separator: ",")
    }

    static func json(_ menu: ApplicationMenu, connection c: USPConnection, user: String?) throws -> String {
        var loggedIn = false
        if case .tokenInvalidation? = menu.authentication { loggedIn = true }
        let wire = (try? SessionMessage.menu(menu).jsonValue()) ?? .null
        var object: [String: JSONValue] = [
            "server": .string(c.server.hostPort),
            "server_key": .string(Base64URL.encode(c.serverKey)),
            "fingerprint": .string(c.serverFingerprint),
            "pattern": .string(c.pattern.rawValue.lowercased()),
            "logged_in": .bool(loggedIn),
            "menu": wire,
        ]
        if loggedIn, let user { object["user"] = .string(user) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let data = try encoder.encode(JSONValue.object(object))
        return String(decoding: data, as: UTF8.self)
    }
}

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Log in and save the authorization token.",
        discussion: "With --user, the password comes from --password-file, a prompt (when stdin is a terminal) or the first line of stdin. With --key, the client's identity key logs in. With --ssh-key, an OpenSSH Ed25519 key (unencrypted) signs this connection's handshake hash; --user then names the account if the key has several. Without any of them, the configuration's SSHKeyFile (unless --password-file) or User decides.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The server: an alias of the configuration, host[:port] or usp://[KEY@]host:port") var uri: String
    @Option(name: .long, help: "User name (password login).") var user: String?
    @Option(name: .long, help: ArgumentHelp("Read the password from the first line of this file.", valueName: "file")) var passwordFile: String?
    @Flag(name: .long, help: "Log in with the identity key (method noise_static).") var key = false
    @Option(name: .customLong("ssh-key"), help: ArgumentHelp("Log in with this OpenSSH Ed25519 private key (method publickey).", valueName: "file"))
    var sshKey: String?

    func validate() throws {
        if sshKey != nil {
            guard !key, passwordFile == nil else { throw ValidationError("--ssh-key goes alone (with an optional --user), not with --key or --password-file") }
            return
        }
        if key, user != nil { throw ValidationError("give either --user NAME, --key or --ssh-key FILE") }
        if key, passwordFile != nil { throw ValidationError("--password-file goes with --user, not --key") }
        if key, connection.anonymous { throw ValidationError("--key needs the identity key; drop --anonymous") }
    }

    func run() async throws {
        try await reporting {
            var flags: [ClientConfig.Setting] = []
            if let user { flags.append(.init(.user, .text(user), origin: .commandLine("--user \(user)"))) }
            if let sshKey { flags.append(.init(.sshKeyFile, .text(sshKey), origin: .commandLine("--ssh-key \(sshKey)"))) }
            let target = try ServerTarget(uri, global: global, connection: connection, flags: flags)
            let server = target.server, home = target.home
            let options = try target.connectionOptions()
            // --key, else an SSH key (unless --password-file asks for a password), else a password.
            let user = key ? nil : target.settings.user
            let sshKey = key || passwordFile != nil ? nil : target.sshKeyFile
            guard key || sshKey != nil || user != nil else {
                throw USPClientError(.invalidArgument, "give either --user NAME, --key or --ssh-key FILE (or User or SSHKeyFile for \(uri) in the configuration)")
            }
            if key, options.anonymous { throw USPClientError(.invalidArgument, "--key needs the identity key; Anonymous is yes (\(target.settings.origin(.anonymous)!))") }
            let token: String
            let c: USPConnection
            var method = user == nil ? "noise_static" : "password"
            if let sshKey {
                let signingKey = try SSHKeyFile.privateKey(at: sshKey)
                c = try await USPConnection.connectForMenu(to: server, home: home, options: options, useSavedLogin: false, notice: printError)
                token = try await c.login(signingKey: signingKey, user: user)
                method = "publickey"
            } else if let user {
                let password = try readPassword(user: user, server: server)
                c = try await USPConnection.connectForMenu(to: server, home: home, options: options, useSavedLogin: false, notice: printError)
                token = try await c.login(user: user, password: password)
            } else {
                guard try home.loadIdentity() != nil else {
                    throw USPClientError(.localFile, "no identity key in \(home.directory): run usp keygen, give the server's administrator the public key, then log in with --key")
                }
                c = try await USPConnection.connectForMenu(to: server, home: home, options: options, useSavedLogin: false, notice: printError)
                token = try await c.loginWithKey()
            }
            // The login this one replaces is revoked, not left valid on the server.
            if let previous = try? home.loadLogin(for: server), previous.token != token {
                do {
                    let n = try await c.invalidate(tokens: [previous.token])
                    if n > 0 { printError("revoked the previous login to \(server.hostPort)" + (previous.user.map { " (as \($0))" } ?? "")) }
                } catch let e as USPClientError {
                    printError("could not revoke the previous login to \(server.hostPort): \(e.message)")
                }
            }
            await c.close()
            let now = UInt64(Date().timeIntervalSince1970)
            try home.saveLogin(SavedLogin(server: server.hostPort, user: user, method: method, token: token, savedAt: now), for: server)
            let how = sshKey.map { " with the SSH key \($0)" } ?? (user == nil ? " with the identity key" : "")
            print("logged in to \(server.hostPort)" + (user.map { " as \($0)" } ?? "") + how + "; login saved in \(home.tokenPath(for: server))")
        }
    }

    func readPassword(user: String, server: ServerURI) throws -> String {
        if let passwordFile {
            let text = try ClientHome.readTextFile(passwordFile, what: "the password file")
            let line = text.split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
            return String(line.trimming { $0 == "\r" })
        }
        if isatty(STDIN_FILENO) == 1 {
            do throws(UnixError) {
                return try TerminalSecretPrompt.read(prompt: "password for \(user) on \(server.hostPort): ")
            } catch {
                throw USPClientError(.localFile, "cannot open the terminal for the password prompt; use --password-file FILE")
            }
        }
        guard let line = readLine(strippingNewline: true) else {
            throw USPClientError(.invalidArgument, "no password: standard input is empty; use --password-file FILE or a terminal")
        }
        return line
    }
}

struct Connect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Bridge stdin/stdout to an application (works as ssh's ProxyCommand).",
        discussion: "Example: ssh -o ProxyCommand='usp connect usp://host:7300 ssh --field user=%r' host")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The server: an alias of the configuration, host[:port] or usp://[KEY@]host:port") var uri: String
    @Argument(help: "The application's name on the menu (default: the alias's Application).") var application: String?
    @Option(name: .customLong("field"), help: ArgumentHelp("A request field for the application (repeatable).", valueName: "name=value"))
    var fields: [String] = []
    @Option(name: .long, help: ArgumentHelp("Wait at most this many milliseconds for the first input bytes, which then travel in the handshake.", visibility: .hidden))
    var earlyWait: Int = 5
    @Option(name: .long, help: ArgumentHelp("Begin with this application token (as usp broker prints it) instead of a login: no login or menu is needed, the token names the application.", valueName: "usp1.…"))
    var token: String?
    @Option(name: .customLong("token-file"), help: ArgumentHelp("Read the application token from the first line of this file (keeps it out of ps).", valueName: "file"))
    var tokenFile: String?
    @OptionGroup var agentChoice: AgentChoice

    func validate() throws {
        if token != nil, tokenFile != nil { throw ValidationError("--token and --token-file exclude each other") }
        if (token != nil || tokenFile != nil), !fields.isEmpty { throw ValidationError("--field has no use with --token: the token carries its request") }
    }

    /// What was parsed, as the plain values `ConnectInvocation.parse` also gives.
    var invocation: ConnectInvocation {
        ConnectInvocation(home: global.home, configFile: connection.config.configFile, options: connection.config.options,
                          flags: connection.flags, noAgent: agentChoice.noAgent, uri: uri, application: application, fields: fields,
                          earlyWait: earlyWait, token: token, tokenFile: tokenFile)
    }

    func run() async throws {
        let invocation = invocation
        try await invocation.finish(try invocation.runOnThisThread())
    }
}

struct Forward: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Forward a local TCP port to an application, a stream per local connection on one USP session; with --udp, a local UDP port to a UDP application.",
        discussion: "With --udp every local client (address and port) is a flow with a stream of its own on one USP session; a flow's datagrams wait in a queue of --udp-queue at most (more are dropped, never waited for), and a flow quiet for --udp-idle seconds ends.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .long, help: ArgumentHelp("Local address to listen on: HOST:PORT or PORT (127.0.0.1).", valueName: "host:port"))
    var listen: String
    @Argument(help: "The server: an alias of the configuration, host[:port] or usp://[KEY@]host:port") var uri: String
    @Argument(help: "The application's name on the menu (default: the alias's Application).") var application: String?
    @Option(name: .customLong("field"), help: ArgumentHelp("A request field for the application (repeatable).", valueName: "name=value"))
    var fields: [String] = []
    @OptionGroup var agentChoice: AgentChoice
    @Flag(name: .long, help: "Forward UDP datagrams (the application is launched with [launch] udp).")
    var udp = false
    @Option(name: .customLong("udp-idle"), help: ArgumentHelp("Seconds after which a quiet UDP flow ends.", valueName: "seconds"))
    var udpIdle: Double = 60
    @Option(name: .customLong("udp-queue"), help: ArgumentHelp("Datagrams a UDP flow holds while the server is slow; more are dropped.", valueName: "n"))
    var udpQueue: Int = 64

    func validate() throws {
        _ = try Self.listenAddress(listen)
        guard udpIdle > 0, udpIdle <= 86_400 else { throw ValidationError("--udp-idle \(udpIdle): expected more than 0 and at most 86400 seconds") }
        guard (1...65_536).contains(udpQueue) else { throw ValidationError("--udp-queue \(udpQueue): expected 1…65536 datagrams") }
    }

    static func listenAddress(_ text: String) throws -> (host: String, port: Int) {
        var host = "127.0.0.1"
        var portText = Substring(text)
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ValidationError("--listen \(text): expected HOST:PORT, [IPv6]:PORT or PORT")
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = text[text.index(close, offsetBy: 2)...]
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
        }
        guard let port = Int(portText), (0...65535).contains(port), !host.isEmpty else {
            throw ValidationError("--listen \(text): expected HOST:PORT, [IPv6]:PORT or PORT")
        }
        return (host, port)
    }

    func run() async throws {
        try await reporting {
            let target = try ServerTarget(uri, global: global, connection: connection, flags: agentChoice.settings())
            let server = target.server, home = target.home
            let application = try target.application(application)
            let options = try target.connectionOptions()
            let textFields = try RequestFields.parse(fields)
            let (host, port) = try Self.listenAddress(listen)
            if udp {
                // One session for every flow, with the saved login (the agent relays streams, not datagrams).
                let forwarder = try await UDPForwarder(listenHost: host, listenPort: port, server: server, home: home, application: application,
                                                       textFields: textFields, options: options, idleTimeout: udpIdle, queueLimit: udpQueue)
                let first = try await USPConnection.connectForMenu(to: server, home: home, options: options, useSavedLogin: !options.anonymous,
                                                                   notice: printError)
                _ = try await first.offer(named: application)
                await first.close()
                printError("forwarding UDP \(forwarder.localAddress.ipAddress ?? host):\(forwarder.localAddress.port ?? port) to \(application) on \(server.hostPort)")
                try await forwarder.run { error in printError("forward: \(error.message)") }
                return
            }
            if let agent = try agentChoice.agent(for: target) {
                // Each local connection gets a stream from the agent, which holds the login.
                let request = AgentRequest.Open(server: server, application: application, textFields: textFields.isEmpty ? nil : textFields)
                let forwarder = try await USPForwarder(listenHost: host, listenPort: port, server: server, home: home, begin: .descriptor({
                    do {
                        return try await agent.open(request).descriptor
                    } catch let e as AgentError {
                        throw USPClientError(.refused, "agent: \(e.message) (\(e.code))")
                    }
                }), options: options)
                printError("forwarding \(forwarder.localAddress.ipAddress ?? host):\(forwarder.localAddress.port ?? port) to \(application) on \(server.hostPort) through the agent on \(agent.socket.path)")
                try await forwarder.run { error in printError("forward: \(error.message)") }
                return
            }
            // One session for every local connection; checked now (server, login, application),
            // not at the first local connection.
            let session = ForwardSession(server: server, home: home, application: application, textFields: textFields, options: options)
            try await session.check()
            let forwarder = try await USPForwarder(listenHost: host, listenPort: port, server: server, home: home, begin: .session(session), options: options)
            printError("forwarding \(forwarder.localAddress.ipAddress ?? host):\(forwarder.localAddress.port ?? port) to \(application) on \(server.hostPort)")
            try await forwarder.run { error in printError("forward: \(error.message)") }
        }
    }
}

struct Logout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: "Invalidate the saved login on the server and forget it.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The server: an alias of the configuration, host[:port] or usp://[KEY@]host:port") var uri: String

    func run() async throws {
        try await reporting {
            let target = try ServerTarget(uri, global: global, connection: connection)
            let server = target.server, home = target.home
            guard let saved = try home.loadLogin(for: server) else {
                throw USPClientError(.notFound, "not logged in to \(server.hostPort) (no saved login in \(home.tokensDirectory))")
            }
            var o = try target.connectionOptions()
            o.authorizationToken = saved.token
            let c: USPConnection
            do {
                c = try await USPConnection.connect(to: server, home: home, options: o)
            } catch let e as USPClientError where e.code == .loginExpired {
                home.removeLogin(for: server)
                print("the server no longer accepted the saved login for \(server.hostPort); forgot it")
                return
            }
            let n = try await c.invalidate(tokens: [saved.token])
            await c.close()
            home.removeLogin(for: server)
            print("logged out of \(server.hostPort)" + (n == 1 ? "" : " (the server invalidated \(n) tokens)"))
        }
    }
}

struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Invalidate tokens (secrets or token IDs) on the server; needs a login.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The server: an alias of the configuration, host[:port] or usp://[KEY@]host:port") var uri: String
    @Argument(help: "Tokens to invalidate: usp1.… secrets or base64url token IDs.") var tokens: [String]

    func validate() throws {
        guard !tokens.isEmpty else { throw ValidationError("name at least one token") }
    }

    func run() async throws {
        try await reporting {
            let target = try ServerTarget(uri, global: global, connection: connection)
            let server = target.server, home = target.home
            guard let saved = try home.loadLogin(for: server) else {
                throw USPClientError(.loginRequired, "revoking tokens needs a login; log in first: usp login \(server.withoutKey) --user NAME")
            }
            var o = try target.connectionOptions()
            o.authorizationToken = saved.token
            let c = try await USPConnection.connect(to: server, home: home, options: o)
            let n = try await c.invalidate(tokens: tokens)
            await c.close()
            if tokens.contains(saved.token) || tokens.contains(saved.tokenID) { home.removeLogin(for: server) }
            print("revoked \(n) token\(n == 1 ? "" : "s") on \(server.hostPort)")
        }
    }
}

struct KnownServersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "known-servers", abstract: "List or remove known server keys.",
        subcommands: [List.self, Remove.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List known_servers.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "One JSON object per line: servers, fingerprint, key, revoked, comment, line.") var json = false
        func run() async throws {
            try await reporting {
                let known = try global.clientHome.loadKnownServers()
                if json {
                    for e in known.entries {
                        var o: [String: JSONValue] = ["servers": .array(e.patterns.map { .string($0) }), "fingerprint": .string(Fingerprint.of(e.key)),
                                                      "key": .string(Base64URL.encode(e.key)), "revoked": .bool(e.revoked), "line": .integer(Int64(e.line))]
                        if let c = e.comment { o["comment"] = .string(c) }
                        print(String(decoding: try JSONValue.object(o).encoded(), as: UTF8.self))
                    }
                    return
                }
                for e in known.entries {
                    let marker = e.revoked ? "@revoked " : ""
                    print("\(marker)\(e.patterns.joined(separator: ",")) \(Fingerprint.of(e.key)) \(Base64URL.encode(e.key))" + (e.comment.map { " \($0)" } ?? ""))
                }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a server's keys (as ssh-keygen -R does).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var config: ConfigOptions
        @Argument(help: "host:port ([IPv6]:port), as known_servers names it, a URI or an alias of the configuration.") var server: String
        func run() async throws {
            try await reporting {
                let home = global.clientHome
                var name = server
                // An alias or URI names the server it resolves to; a pattern (*, ?) stays as written.
                let file = try config.load(home: home), settings = try config.settings()
                if let target = try? file.resolve(server, commandLine: settings) { name = target.server.hostPort }
                let n = try home.removeKnownServer(name)
                guard n > 0 else { throw USPClientError(.notFound, "no line for \(name) in \(home.knownServersPath)") }
                print("removed \(n) line\(n == 1 ? "" : "s") for \(name) from \(home.knownServersPath)")
            }
        }
    }
}
