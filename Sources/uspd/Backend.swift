import Foundation
import Logging
import USPConfig
import USPServer
import USPStore
import USPStorePostgres

/// Where uspd meets USPStore and USPConfig: the store (SQLite, or PostgreSQL for a fleet), scrypt
/// password hashes and the TOML loaders.
enum Backend {
    static func loadConfig(path: String) throws -> ServerConfig {
        do { return try ServerConfigLoader.load(path: path) } catch { throw Failure("\(error)") }
    }

    static func tomlText(_ config: ServerConfig) -> String { config.tomlText }

    /// The data directory's store: the SQLite file, or the PostgreSQL database its `database` names.
    static func openStore(_ home: ServerHome, logger: Logger = Logger(label: "uspd.store")) throws -> any AdminStore {
        do {
            if let url = home.databaseURL {
                let location = try PostgresLocation.parse(url, passwordFile: home.databasePasswordFilePath)
                return try PostgresStore(location: location, node: home.nodeName, logger: logger)
            }
            return try SQLiteStore(path: home.databasePath, node: home.nodeName)
        } catch {
            throw Failure("\(error)")
        }
    }

    static func openPostgres(_ url: String, passwordFile: String?, node: String?) throws -> PostgresStore {
        do { return try PostgresStore(location: try PostgresLocation.parse(url, passwordFile: passwordFile), node: node) } catch { throw Failure("\(error)") }
    }

    static func hashPassword(_ password: String) throws -> String {
        do { return try PasswordHash.hash(password: password) } catch { throw Failure("\(error)") }
    }

    static func policy(store: any USPStore, config: ServerConfig, logger: Logger, reservePath: String?,
                       metrics: ServerMetrics = ServerMetrics()) -> ServerPolicy {
        let prefixes = SourcePrefix.Lengths(v4: config.sourcePrefixV4, v6: config.sourcePrefixV6)
        let reserve = reservePath.flatMap { path in config.auditReserve > 0 ? SpaceReserve(path: path, bytes: Int(config.auditReserve * 1_048_576)) : nil }
        let audit = AuditLog(store: store, logger: logger, summaries: .init(interval: config.auditSummaryInterval),
                             prefixLengths: prefixes, reserve: reserve, metrics: metrics)
        return ServerPolicy(store: store, catalog: ApplicationCatalog(), audit: audit,
                     throttle: LoginThrottle(base: config.loginDelayBase, maximum: config.loginDelayMax,
                                             identityMaximum: config.loginDelayIdentityMax, prefixLengths: prefixes),
                     settings: ServerPolicy.Settings(config: config),
                     verifyPassword: { password, hash in (try? PasswordHash.verify(password: password, hash: hash)) ?? false },
                     onUnknownUser: { password in _ = PasswordHash.verifyAgainstDummy(password: password) },
                     logger: logger)
    }

    /// Every application in `directory`, or the first problem (for `uspd -t` and `app list`).
    static func loadApplications(directory: String, defaultTokenLifetime: Int) throws -> [ApplicationDefinition] {
        let registry = ApplicationRegistry(defaultTokenLifetime: defaultTokenLifetime)
        let report = registry.reload(directory: directory)
        if let problem = report.problems.first { throw Failure("\(problem)") }
        return registry.snapshot()
    }
}
