import Logging
import USPStore

extension ServerHome {
    /// Creates what is missing of the data directory (`create()`, each path logged), opens its
    /// database (`openStore`, SQLite at `databasePath` by default), and adds the user `admin`
    /// (group `admins`) with a generated password unless there is one. Returns that password, to
    /// be shown once, or nil when `admin` existed.
    public func initialize(logger: Logger, openStore: ((ServerHome) throws -> any USPStore)? = nil) throws -> String? {
        let created = try create()
        for path in created { logger.info("created \(path)") }
        let store = try openStore?(self) ?? SQLiteStore(path: databasePath)
        guard try store.user(named: "admin") == nil else { return nil }
        let password = GeneratedPassword.make()
        try store.upsertUser(UserRecord(name: "admin", groups: ["admins"], passwordHash: try PasswordHash.hash(password: password)))
        return password
    }
}
