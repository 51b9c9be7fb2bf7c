import ArgumentParser
import Foundation
import Logging
import Prometheus
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import USPConfig
import USPCore
import USPServer
import USPStore
import USPUnix

/// `uspd`: the USP daemon. Thin: parses arguments, builds the configuration, runs services.
@main
struct USPD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uspd",
        abstract: "The Universal Session Protocol daemon.",
        discussion: """
        uspd puts every application of a host behind one endpoint: a client connects, every byte \
        is encrypted from the first one (a Noise handshake), it sees an application menu, logs in \
        (password, Noise key or SSH key) and gets a token for each application session. With no \
        subcommand uspd serves (uspd serve): it creates the data directory on first run (a host \
        key, a SQLite database, a sample apps.d and an admin user whose password it prints once \
        on stderr), listens on 127.0.0.1:7300 and [::1]:7300 unless told otherwise, and prints \
        the usp:// URIs clients use. SIGTERM drains, SIGHUP reloads apps.d.

        FILES (DATA is the data directory): DATA/host_key, the server's X25519 key (mode 0600); \
        DATA/usp.sqlite, users, tokens and the audit trail; DATA/apps.d/*.toml, one application \
        each; DATA/uspd.toml, the optional configuration; DATA/uspd.sock, the control socket of \
        uspd status and uspd sessions; DATA/uspd.lock, held while uspd serves.

        ENVIRONMENT: USPD_DATA_DIR, the data directory when --data-dir is not given; \
        STATE_DIRECTORY, set by systemd (StateDirectory=uspd gives /var/lib/uspd), used when \
        neither is; else ./usp-data. The client's USP_HOME is never read. LISTEN_FDS and \
        LISTEN_PID: listening sockets passed by systemd (uspd.socket) are served instead of the \
        listen addresses. NOTIFY_SOCKET: uspd sends READY=1 once it listens and STOPPING=1 when \
        it starts draining (Type=notify).

        EXIT STATUS: 0 on success, 1 on a runtime error (one line on stderr), 64 on a usage error.
        """,
        version: "0.3.0",
        subcommands: [Serve.self, Init.self, Status.self, Sessions.self, User.self, App.self, Audit.self, Store.self, URI.self, Key.self, DNSRecords.self],
        defaultSubcommand: Serve.self
    )
}

/// Options every subcommand takes.
struct HomeOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "The data directory (default: $USPD_DATA_DIR, $STATE_DIRECTORY, or ./usp-data; never the client's $USP_HOME).")
    var dataDirectory: String?

    @Option(name: .customLong("config"), help: "uspd.toml (default: DATA/uspd.toml if it exists).")
    var configPath: String?

    @Option(name: .customLong("database"),
            help: "The store instead of uspd.toml's database: a SQLite file, or postgresql://USER@HOST[:PORT]/DB (no password: database_password_file, $USPD_DATABASE_PASSWORD or $PGPASSWORD).")
    var database: String?

    @Flag(name: .short, help: "More log output (-v debug, -vv trace).")
    var verbose: Int

    @Option(name: .customLong("log-format"), help: "Log format on stderr: text or json.")
    var logFormat: String = "text"

    func validate() throws {
        guard LogSetup.Format(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be text or json") }
    }

    var directory: String {
        let env = ProcessInfo.processInfo.environment
        // USP_HOME is the client's: a user who exports it for `usp` must not find uspd's keys,
        // database and admin password in it.
        let fromEnvironment = env["USPD_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 }
        return dataDirectory ?? fromEnvironment ?? env["STATE_DIRECTORY"]?.split(separator: ":").first.map(String.init) ?? "usp-data"
    }

    /// The configuration and the home it describes.
    func load() throws -> (ServerHome, ServerConfig, configFound: Bool) {
        let path = configPath ?? ServerHome(directory: directory).configPath
        let found = FileManager.default.fileExists(atPath: path)
        if configPath != nil, !found { throw Failure("\(path): no such file") }
        var config = found ? try Backend.loadConfig(path: path) : ServerConfig()
        if let database {
            guard !database.isEmpty else { throw Failure("--database must not be empty") }
            config.database = database
        }
        return (ServerHome(directory: directory, config: config), config, found)
    }

    @discardableResult
    func bootstrapLogging(_ config: ServerConfig?) -> Logger {
        _ = LogSetup.bootstrap(verbosity: verbose, configured: config?.logLevel, format: LogSetup.Format(rawValue: logFormat) ?? .text)
        return Logger(label: "uspd")
    }
}

/// A runtime failure: one line on stderr, exit status 1.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

// MARK: - serve

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve (the default).",
        discussion: """
        Before creating anything, uspd checks that it can bind every listen address (--listen, \
        else uspd.toml's listen, else 127.0.0.1:7300 and [::1]:7300) and takes DATA/uspd.lock, \
        so that a second uspd on the same data directory is refused. On first run it creates the \
        data directory and prints the admin password once on stderr; then it prints the usp:// \
        URIs on stdout. Sockets passed by systemd (LISTEN_FDS) are served instead of the listen \
        addresses. SIGTERM or SIGINT drain: no new connections, CLOSE shutting_down to every \
        session. SIGHUP reloads apps.d (also polled every 2 seconds). It stops with exit status 1 \
        if its database file is deleted or replaced while it runs.
        """)

    @OptionGroup var home: HomeOptions

    @Option(name: .customLong("listen"), help: "host:port or [v6]:port to listen on (repeatable; replaces the config's).")
    var listen: [String] = []

    @Flag(name: [.customShort("t"), .customLong("check-config")], help: "Check the configuration and apps.d, then exit.")
    var checkConfig = false

    @Flag(name: [.customShort("T"), .customLong("print-config")], help: "Print the effective configuration, then exit.")
    var printConfig = false

    func validate() throws {
        for l in listen {
            do { _ = try ListenAddress.parse(l) } catch { throw ValidationError("\(error)") }
        }
    }

    func run() async throws {
        let (homeDir, loaded, configFound) = try home.load()
        var config = loaded
        if !listen.isEmpty { config.listen = listen }
        // The embedded default listens on both loopbacks (IPv4 and IPv6).
        let embeddedDefault = !configFound && listen.isEmpty
        if embeddedDefault { config.listen = ["127.0.0.1:7300", "[::1]:7300"] }
        if printConfig {
            print(Backend.tomlText(config), terminator: "")
            return
        }
        if checkConfig {
            let apps = try Backend.loadApplications(directory: homeDir.appsDirectory, defaultTokenLifetime: config.applicationTokenLifetime)
            _ = try config.listen.map(ListenAddress.parse)
            print("uspd: configuration OK (\(apps.count) application(s))")
            return
        }
        let logger = home.bootstrapLogging(config)
        let inherited = Systemd.inheritedSockets()
        // Before anything is created or a password printed: can uspd listen there, and is no
        // other uspd serving this directory?
        if inherited.isEmpty {
            do {
                try StartupChecks.probe(try config.listen.map(ListenAddress.parse), optional: embeddedDefault ? ["[::1]:7300"] : [])
            } catch {
                throw Failure("\(error); nothing was created")
            }
        }
        let lock: StartupChecks.DataDirectoryLock
        do { lock = try StartupChecks.DataDirectoryLock(directory: homeDir.directory) } catch { throw Failure("\(error)") }
        var createdAdmin = false
        if !homeDir.exists {
            let password = try homeDir.initialize(logger: logger, openStore: { try Backend.openStore($0, logger: logger) })
            printAdminPassword(password)
            createdAdmin = password != nil
        }
        let key = try ServerHome.loadHostKey(at: homeDir.hostKeyPath)
        let store = try Backend.openStore(homeDir, logger: logger)
        // A SQLite file deleted or replaced under a running uspd is caught below; PostgreSQL is
        // the database server's to keep.
        let opened = homeDir.databaseURL == nil ? StartupChecks.identity(of: homeDir.databasePath) : nil
        // Counted only when someone can read it.
        let metricsRegistry = config.metricsListen.isEmpty ? nil : PrometheusCollectorRegistry()
        let metrics = metricsRegistry.map { registry in
            var factory = PrometheusMetricsFactory(registry: registry)
            // An fdatasync takes from tens of microseconds (SSD cache) to seconds (a failing disk).
            factory.durationHistogramBuckets["usp_store_sync_seconds"] = [
                .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5),
                .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
            ]
            return ServerMetrics(factory: factory)
        } ?? ServerMetrics()
        let policy = Backend.policy(store: store, config: config, logger: logger, reservePath: homeDir.reservePath, metrics: metrics)
        var options = ServerRuntime.Options(config: config)
        if embeddedDefault { options.optionalListen = ["[::1]:7300"] }
        options.inheritedSockets = inherited
        options.adminSocket = homeDir.adminSocketPath
        options.nodeName = homeDir.nodeName
        let runtime = ServerRuntime(options: options, staticKey: key, policy: policy, logger: logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let watcher = ApplicationsWatcher(directory: homeDir.appsDirectory, defaultTokenLifetime: config.applicationTokenLifetime,
                                          report: { problem in logger.error("\(problem)") },
                                          fixed: { path in
                                              let what = FileManager.default.fileExists(atPath: path) ? "loads again; its definition is in use now" : "is gone"
                                              logger.notice("\(path): \(what)")
                                          })
        let daemon = USPDaemon(runtime: runtime, group: group,
                               loadApplications: { watcher.load() },
                               onHangup: { watcher.forceNext() },
                               onReady: { [createdAdmin] addresses in
                                   let uris = addresses.compactMap { a in
                                       a.ipAddress.flatMap { ip in a.port.map { ServerHome.uri(serverKey: key.publicKey, host: ip, port: $0) } }
                                   }
                                   for uri in uris { print(uri) }
                                   fflush(nil)
                                   if createdAdmin, let uri = uris.first { printNextStep(uri: uri) }
                                   fflush(nil)
                                   Systemd.notify("READY=1")
                               },
                               metricsRegistry: metricsRegistry,
                               onDraining: { Systemd.notify("STOPPING=1") })
        let services = ServiceGroup(configuration: .init(services: [daemon], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        // A database deleted or replaced under a running uspd would silently split the state
        // (grants in an unlinked file, lost at restart): stop loudly instead.
        let databaseLost = Mutex<String?>(nil)
        let watch = Task { [databasePath = homeDir.databasePath] in
            guard let opened else { return }
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(2))
                if let problem = StartupChecks.databaseProblem(path: databasePath, opened: opened) {
                    logger.critical("\(problem)")
                    databaseLost.withLock { $0 = problem }
                    await services.triggerGracefulShutdown()
                    return
                }
            }
        }
        defer { watch.cancel() }
        do {
            try await services.run()
        } catch {
            try? await group.shutdownGracefully()
            throw Failure("\(error)")
        }
        try? await group.shutdownGracefully()
        withExtendedLifetime(lock) {}
        if let problem = databaseLost.withLock({ $0 }) { throw Failure(problem) }
    }
}

/// After a first start: what to type on a client (stderr, beside the password).
func printNextStep(uri: String, serving: Bool = true) {
    let start = serving ? "" : "start it with `uspd serve`, then "
    let text = "uspd: next, \(start)on a client: usp login \(uri) --user admin\n"
        + "uspd: then `usp menu \(uri)` lists what admin may open, and `uspd status` shows who is connected\n"
    FileHandle.standardError.write(Data(text.utf8))
}

func printAdminPassword(_ password: String?) {
    guard let password else { return }
    // Printed once, on stderr, so that stdout stays the URI for scripts.
    FileHandle.standardError.write(Data("uspd: created user admin with password: \(password)\nuspd: it is shown only this once\n".utf8))
}

// MARK: - init

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Create the data directory: host key, database, sample apps.d, admin user.")

    @OptionGroup var home: HomeOptions

    func run() async throws {
        let (homeDir, config, _) = try home.load()
        let logger = home.bootstrapLogging(config)
        if homeDir.exists {
            throw Failure("\(homeDir.directory) is already initialised (host key \(homeDir.hostKeyPath) exists)")
        }
        let password = try homeDir.initialize(logger: logger, openStore: { try Backend.openStore($0, logger: logger) })
        printAdminPassword(password)
        let key = try ServerHome.loadHostKey(at: homeDir.hostKeyPath)
        print("initialised \(homeDir.directory); server key \(Base64URL.encode(key.publicKey)) (\(Fingerprint.of(key.publicKey)))")
        if password != nil, let first = config.listen.first, let a = try? ListenAddress.parse(first) {
            fflush(nil)
            printNextStep(uri: ServerHome.uri(serverKey: key.publicKey, host: a.host, port: a.port), serving: false)
        }
    }
}

// MARK: - uri

struct Key: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Print the server's public key and its fingerprint (what clients see in known_servers and on first contact).")

    @OptionGroup var home: HomeOptions

    func run() async throws {
        let (homeDir, _, _) = try home.load()
        let key = try ServerHome.loadHostKey(at: homeDir.hostKeyPath)
        print(Base64URL.encode(key.publicKey))
        print(Fingerprint.of(key.publicKey))
    }
}

struct URI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uri",
        abstract: "Print the usp:// URI of each listen address.",
        discussion: "The addresses the running uspd is bound to (asked through DATA/uspd.sock), else those of the configuration.")

    @OptionGroup var home: HomeOptions

    @Option(help: "Host name to put in the URI instead of the listen address.")
    var host: String?

    func run() async throws {
        let (homeDir, config, found) = try home.load()
        let key = try ServerHome.loadHostKey(at: homeDir.hostKeyPath)
        var listen = try (found ? config.listen : ["127.0.0.1:7300", "[::1]:7300"]).map(ListenAddress.parse)
        if let running = try? AdminSocketClient.ask(homeDir.adminSocketPath, ["command": "status"], timeout: 2),
           let bound = running["listening"]?.arrayValue?.compactMap({ $0.stringValue.flatMap { try? ListenAddress.parse($0) } }),
           !bound.isEmpty {
            listen = bound
        }
        for a in listen {
            print(ServerHome.uri(serverKey: key.publicKey, host: host ?? a.host, port: a.port))
        }
    }
}
