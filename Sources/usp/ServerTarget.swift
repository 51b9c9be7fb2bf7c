import ArgumentParser
import FoundationEssentials
import USPClient

/// `-F FILE` and `-o Keyword=Value`, as ssh takes them: which configuration file, and values
/// that come before the file's.
struct ConfigOptions: ParsableArguments {
    @Option(name: .customShort("F"), help: ArgumentHelp("Read this configuration file instead of HOME/config; none: no file.", valueName: "file"))
    var configFile: String?

    @Option(name: .customShort("o"), help: ArgumentHelp("A configuration value that wins over the file's (repeatable), as -o Port=7400.",
                                                        valueName: "Keyword=Value"))
    var options: [String] = []

    func load(home: ClientHome) throws -> ClientConfig {
        try ClientConfig.load(home: home, file: configFile)
    }

    func settings() throws -> [ClientConfig.Setting] { try Self.settings(options) }

    /// `-o` texts as settings.
    static func settings(_ options: [String]) throws -> [ClientConfig.Setting] {
        try options.map { text throws(USPClientError) in try ClientConfig.option(text) }
    }
}

/// A server argument (an alias of the configuration, `host[:port]` or a `usp://` URI) resolved
/// with the command line's flags first, then `-o`, then the configuration file: the one place
/// commands turn what was typed into a server and its settings.
struct ServerTarget {
    let home: ClientHome
    let resolved: ResolvedTarget

    var server: ServerURI { resolved.server }
    var settings: ClientSettings { resolved.settings }

    /// `flags`: the command's own options as settings (they come first, as ssh's do).
    init(_ typed: String, global: GlobalOptions, config: ConfigOptions, flags: [ClientConfig.Setting] = []) throws {
        try self.init(typed, home: global.clientHome, configFile: config.configFile, options: config.options, flags: flags)
    }

    /// From plain values: `configFile` is -F's, `options` the -o texts.
    init(_ typed: String, home: ClientHome, configFile: String?, options: [String], flags: [ClientConfig.Setting]) throws {
        self.home = home
        resolved = try ClientConfig.load(home: home, file: configFile).resolve(typed, commandLine: flags + ConfigOptions.settings(options))
    }

    /// A connecting command's options: ConnectionOptions' flags first.
    init(_ typed: String, global: GlobalOptions, connection: ConnectionOptions, flags: [ClientConfig.Setting] = []) throws {
        try self.init(typed, global: global, config: connection.config, flags: try connection.settings() + flags)
    }

    /// The connection options the settings decide; new server keys are announced on stderr.
    func connectionOptions() throws -> USPConnectionOptions {
        var o = USPConnectionOptions()
        o.onNewServerKey = { printError($0) }
        try settings.apply(to: &o)
        return o
    }

    /// The application: the argument, else the alias's `Application`.
    func application(_ given: String?) throws -> String {
        if let given { return given }
        guard let name = settings.application else {
            throw USPClientError(.invalidArgument, "name the application (usp menu \(resolved.typed) lists them), or set Application for \(resolved.typed) in the configuration")
        }
        return name
    }

    /// `SSHKeyFile` with a leading `~/` made the home directory, as ssh expands IdentityFile.
    var sshKeyFile: String? {
        guard let path = settings.sshKeyFile else { return nil }
        guard path == "~" || path.hasPrefix("~/") else { return path }
        return ClientHome.userHome() + path.dropFirst()
    }
}
