import ArgumentParser
import FoundationEssentials
import USPClient
import USPCore

/// `usp config show ALIAS`: what an alias resolves to, and where each value came from.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Show what a server argument resolves to through HOME/config (ssh_config syntax).",
        subcommands: [Show.self], defaultSubcommand: Show.self)

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Print the settings an alias (or host[:port], or URI) resolves to, each with its source: file:line, the command line, or default.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "An alias of the configuration, host[:port] or usp://[KEY@]host:port") var alias: String
        @Flag(name: .long, help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            try await reporting {
                let target = try ServerTarget(alias, global: global, connection: connection)
                let rows = target.settings.rows
                let file = connection.config.configFile ?? target.home.configPath
                if json {
                    var settings: [String: JSONValue] = [:]
                    for r in rows {
                        settings[r.keyword.rawValue] = .object(["value": r.value.map { .string($0) } ?? .null, "source": .string(r.origin)])
                    }
                    let object: JSONValue = .object(["alias": .string(alias), "uri": .string(target.server.description),
                                                     "config": .string(file), "settings": .object(settings)])
                    print(String(decoding: try object.encoded(), as: UTF8.self))
                    return
                }
                print("alias:  \(alias)\nuri:    \(target.server)\nconfig: \(file)")
                print(TextTable.render(["KEYWORD", "VALUE", "SOURCE"], rows.map { [$0.keyword.rawValue, $0.value ?? "-", $0.origin] }),
                      terminator: "")
            }
        }
    }
}

/// `usp logins list|remove`: the saved logins (HOME/tokens/), on this machine only.
struct LoginsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logins", abstract: "List or delete the saved logins (authorization tokens in HOME/tokens).",
        discussion: "Deleting a saved login only forgets it here; the server still accepts it until it expires. usp logout SERVER revokes it on the server and forgets it.",
        subcommands: [List.self, Remove.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List saved logins: server, user, method, when saved, the aliases that reach the server, token ID.",
            discussion: "The expiry is not known here: the server sets it (authorization_token_lifetime) and says so when the login is next used.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var config: ConfigOptions
        @Flag(name: .long, help: "Print a JSON array instead of a table.") var json = false

        func run() async throws {
            try await reporting {
                let home = global.clientHome
                let file = try config.load(home: home)
                let logins = try home.savedLogins()
                if json {
                    let array = logins.map { entry -> JSONValue in
                        guard let l = entry.login else { return .object(["file": .string(entry.path), "error": .string(entry.problem ?? "unreadable")]) }
                        return .object([
                            "server": .string(l.server), "user": l.user.map { .string($0) } ?? .null, "method": .string(l.method),
                            "token_id": .string(l.tokenID), "saved_at": .integer(Int64(l.savedAt)), "saved": .string(Self.time(l.savedAt)),
                            "expires": .null, "aliases": .array(file.aliases(resolvingTo: l.server).map { .string($0) }), "file": .string(entry.path),
                        ])
                    }
                    print(String(decoding: try JSONValue.array(array).encoded(), as: UTF8.self))
                    return
                }
                guard !logins.isEmpty else {
                    print("no saved logins in \(home.tokensDirectory)")
                    return
                }
                let rows = logins.map { entry -> [String] in
                    guard let l = entry.login else { return [entry.path, "-", "-", "-", "-", "error: \(entry.problem ?? "unreadable")"] }
                    let aliases = file.aliases(resolvingTo: l.server)
                    return [l.server, l.user ?? "-", l.method, Self.time(l.savedAt), aliases.isEmpty ? "-" : aliases.joined(separator: ","), l.tokenID]
                }
                print(TextTable.render(["SERVER", "USER", "METHOD", "SAVED", "ALIASES", "TOKEN ID"], rows), terminator: "")
            }
        }

        static func time(_ seconds: UInt64) -> String {
            Date(timeIntervalSince1970: TimeInterval(seconds)).formatted(Date.ISO8601FormatStyle(timeZone: .gmt))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Delete saved logins on this machine (the server still accepts them until they expire; usp logout revokes).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var config: ConfigOptions
        @Argument(help: "The server: an alias of the configuration, host[:port] or usp://[KEY@]host:port") var server: String?
        @Flag(name: .long, help: "Delete every saved login.") var all = false

        func validate() throws {
            guard (server != nil) != all else { throw ValidationError("name a server (an alias, host[:port] or URI) or give --all") }
        }

        func run() async throws {
            try await reporting {
                let note = "deleted here only: the server accepts it until it expires; usp logout SERVER also revokes it there"
                if all {
                    let home = global.clientHome
                    let files = try home.savedLogins()
                    let n = files.filter { home.removeSavedLogin(at: $0.path) }.count
                    print("removed \(n) saved login\(n == 1 ? "" : "s") from \(home.tokensDirectory)" + (n > 0 ? " (\(note))" : ""))
                    return
                }
                let target = try ServerTarget(server!, global: global, config: config)
                let saved = try? target.home.loadLogin(for: target.server)
                guard target.home.removeLogin(for: target.server) else {
                    throw USPClientError(.notFound, "no saved login for \(target.server.hostPort) in \(target.home.tokensDirectory)")
                }
                print("removed the saved login for \(target.server.hostPort)" + (saved?.user.map { " (as \($0))" } ?? "") + " (\(note))")
            }
        }
    }
}
