import ArgumentParser
import FoundationEssentials
import Glibc
import USPClient
import USPCore

/// `usp broker URI APP --for ADDRESS`: connection brokering. With a login that the server lets
/// broker (a `[[broker]]` rule), asks for an application token that only the client at ADDRESS
/// may use, and prints it. That client runs `usp connect URI APP --token TOKEN` with no login of
/// its own; the server's audit trail traces its stream back to this login.
struct Broker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Get an application token for another client's address (connection brokering); needs a login with the broker right.",
        discussion: """
            Prints the token secret (or, with --json, an object with token, token_id, application, for, server). \
            Give it to the client at ADDRESS, which runs: usp connect URI APP --token TOKEN. \
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

    func validate() throws {
        guard Self.isAddress(clientAddress) else {
            throw ValidationError("--for \(clientAddress): expected an IPv4 or IPv6 address (no port, brackets or zone), e.g. 192.0.2.7 or 2001:db8::7")
        }
    }

    /// An address as the wire takes it (docs/PROTOCOL.md §6.3.1); the server parses it again.
    static func isAddress(_ text: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
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
            guard json else {
                print(token)
                return
            }
            var object: [String: JSONValue] = [
                "token": .string(token),
                "application": .string(application),
                "for": .string(clientAddress),
                "server": .string(server.hostPort),
            ]
            if let id = try? TokenProof.tokenID(secret: token) { object["token_id"] = .string(id.description) }
            print(String(decoding: try JSONValue.object(object).encoded(), as: UTF8.self))
        }
    }
}
