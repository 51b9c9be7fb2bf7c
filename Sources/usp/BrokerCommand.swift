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
        guard Self.isAddress(clientAddress) else {
            throw ValidationError("--for \(clientAddress): expected an IPv4 or IPv6 address (no port, brackets or zone), e.g. 192.0.2.7 or 2001:db8::7")
        }
    }

    /// An address as the wire takes it (docs/PROTOCOL.md §6.3.1); the server parses it again.
    static func isAddress(_ text: String) -> Bool { canonical(text) != nil }

    /// The address as the server compares it: dotted decimal (an IPv4-mapped IPv6 address is
    /// its IPv4 address) or RFC 5952 IPv6; nil if it is neither.
    static func canonical(_ text: String) -> String? {
        var v4 = in_addr(), v6 = in6_addr()
        var bytes: [UInt8]
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff { bytes = Array(bytes[12...]) }
        } else {
            return nil
        }
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = bytes.withUnsafeBytes { inet_ntop(bytes.count == 4 ? AF_INET : AF_INET6, $0.baseAddress, &out, socklen_t(out.count)) }
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Writes `text` to `path` with mode 600 (a token is a credential), replacing the file.
    static func writePrivately(_ text: String, to path: String) throws {
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw USPClientError(.localFile, "--output \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw USPClientError(.localFile, "--output \(path): \(String(cString: strerror(errno)))")
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
                    "for": .string(Self.canonical(clientAddress) ?? clientAddress),
                    "server": .string(server.hostPort),
                ]
                if let id = try? TokenProof.tokenID(secret: token) { object["token_id"] = .string(id.description) }
                text = String(decoding: try JSONValue.object(object).encoded(), as: UTF8.self)
            }
            if let output {
                try Self.writePrivately(text + "\n", to: output)
            } else {
                print(text)
            }
        }
    }
}
