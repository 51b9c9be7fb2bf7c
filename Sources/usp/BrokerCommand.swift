import ArgumentParser
import FoundationEssentials
import USPClient
import USPCore
import USPUnix

/// `usp broker URI APP --for ADDRESS`: connection brokering. With a login that the server lets
/// broker (a `[[broker]]` rule), asks for an application token that only the client at ADDRESS
/// may use, and prints it. That client runs `usp connect URI APP --token TOKEN` with no login of
/// its own; the server's audit trail traces its stream back to this login.
struct Broker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Get an application token for another client's address (connection brokering); needs a login with the broker right.",
        discussion: """
            Prints the token secret (or, with --json, an object with token, token_id, application, for, server), \
            or writes it to --output FILE (mode 600). Give it to the client at ADDRESS over a channel you trust; \
            it runs: usp connect URI APP --token-file FILE (or --token TOKEN, which ps can show). \
            The token works only from ADDRESS (as the server sees it), expires after the server's brokered token lifetime, \
            and is revoked with this login (usp logout).
            """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The server: an alias of the configuration, host[:port] or usp://[KEY@]host:port") var uri: String
    @Argument(help: "The application's name on the menu (default: the alias's Application).") var application: String?
    @Option(name: .customLong("for"), help: ArgumentHelp("The IPv4 or IPv6 address of the client the token is for, as the server will see it.", valueName: "address"))
    var clientAddress: String
    @Option(name: .customLong("field"), help: ArgumentHelp("A request field for the application (repeatable).", valueName: "name=value"))
    var fields: [String] = []
    @Flag(name: .long, help: "Print a JSON object instead of the bare token.") var json = false
    @Option(name: .long, help: ArgumentHelp("Write the output to this file, created with mode 600 (replaced if it exists), instead of stdout.", valueName: "file"))
    var output: String?

    func validate() throws {
        guard IPAddress(clientAddress) != nil else {
            throw ValidationError("--for \(clientAddress): expected an IPv4 or IPv6 address (no port, brackets or zone), e.g. 192.0.2.7 or 2001:db8::7")
        }
    }

    func run() async throws {
        try await reporting {
            let target = try ServerTarget(uri, global: global, connection: connection)
            let server = target.server, home = target.home
            let application = try target.application(application)
            guard try home.loadLogin(for: server) != nil else {
                throw USPClientError(.loginRequired, "brokering needs a login with the broker right; log in first: usp login \(server.withoutKey) --user NAME")
            }
            let c = try await USPConnection.connectForMenu(to: server, home: home, options: try target.connectionOptions(), notice: printError)
            let token: String
            do {
                token = try await c.requestBrokeredApplication(name: application, textFields: try RequestFields.parse(fields), for: clientAddress)
            } catch {
                await c.close()
                throw error
            }
            await c.close()
            var text = token
            if json {
                var object: [String: JSONValue] = [
                    "token": .string(token),
                    "application": .string(application),
                    "for": .string(IPAddress(clientAddress)?.description ?? clientAddress),
                    "server": .string(server.hostPort),
                ]
                if let id = try? TokenProof.tokenID(secret: token) { object["token_id"] = .string(id.description) }
                text = String(decoding: try JSONValue.object(object).encoded(), as: UTF8.self)
            }
            if let output {
                try TokenFile.write(text, to: output)
            } else {
                print(text)
            }
        }
    }
}
