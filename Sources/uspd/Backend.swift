import Foundation
import Logging
import Synchronization
import USPConfig
import USPCore
import USPServer
import USPStore

/// Where uspd meets USPStore and USPConfig: the SQLite store, scrypt password hashes and the
/// TOML loaders.
enum Backend {
    static func loadConfig(path: String) throws -> ServerConfig {
        do { return try ServerConfigLoader.load(path: path) } catch { throw Failure("\(error)") }
    }

    static func tomlText(_ config: ServerConfig) -> String { config.tomlText }

    static func openStore(_ path: String) throws -> SQLiteStore {
        do { return try SQLiteStore(path: path) } catch { throw Failure("\(error)") }
    }

    static func hashPassword(_ password: String) throws -> String {
        do { return try PasswordHash.hash(password: password) } catch { throw Failure("\(error)") }
    }

    /// 18 random bytes as base64url: 24 characters, 144 bits.
    static func randomPassword() -> String {
        Base64URL.encode(SystemRandomSource().bytes(18))
    }

    static func policy(store: any USPStore, config: ServerConfig, logger: Logger) -> ServerPolicy {
        ServerPolicy(store: store, catalog: ApplicationCatalog(), audit: AuditLog(store: store, logger: logger),
                     throttle: LoginThrottle(base: config.loginDelayBase, maximum: config.loginDelayMax),
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

    /// For the daemon: one registry kept across reloads, so a file that stops loading keeps its last
    /// good definition (and the problem is logged), and nothing is read while apps.d is unchanged.
    final class ApplicationsWatcher: Sendable {
        let directory: String
        let registry: ApplicationRegistry
        private let last = Mutex<DirectoryFingerprint?>(nil)
        let logger: Logger

        /// `defaultTokenLifetime`: uspd.toml `application_token_lifetime`, for applications whose
        /// file sets no `token_lifetime`.
        init(directory: String, defaultTokenLifetime: Int, logger: Logger) {
            self.directory = directory
            self.registry = ApplicationRegistry(defaultTokenLifetime: defaultTokenLifetime)
            self.logger = logger
        }

        func load() -> [ApplicationDefinition] {
            let fingerprint = DirectoryFingerprint(directory: directory)
            let changed = last.withLock { old -> Bool in
                defer { old = fingerprint }
                return old != fingerprint
            }
            if changed {
                let report = registry.reload(directory: directory)
                for problem in report.problems { logger.error("\(problem)") }
            }
            return registry.snapshot()
        }

        /// SIGHUP: read everything again, even if nothing seems to have changed.
        func forceNext() { last.withLock { $0 = nil } }
    }

    /// Creates the data directory, its database and an admin user; returns the admin's password.
    static func initialize(_ home: ServerHome, logger: Logger) throws -> String? {
        let created = try home.create()
        for path in created { logger.info("created \(path)") }
        let store = try openStore(home.databasePath)
        guard try store.user(named: "admin") == nil else { return nil }
        let password = randomPassword()
        try store.upsertUser(UserRecord(name: "admin", groups: ["admins"], passwordHash: try hashPassword(password)))
        return password
    }
}
