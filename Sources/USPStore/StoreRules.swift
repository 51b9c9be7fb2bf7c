import Foundation

/// What every backend applies the same way: which users and tokens are acceptable, how times
/// are stored (milliseconds since the epoch) and how a group list is written (a JSON array).
public enum StoreRules {
    /// - Throws: `.invalidArgument` for an empty name, group or key, a repeated key, or a
    ///   malformed `passwordHash`; `path` names the store in the message.
    public static func validate(_ user: UserRecord, path: String) throws(StoreError) {
        try SQLiteStore.validate(user, path: path)
    }

    /// - Throws: `.invalidArgument` for an empty ID or key, or `expiresAt` before `issuedAt`.
    public static func validate(_ token: TokenRecord, path: String) throws(StoreError) {
        try SQLiteStore.validate(token, path: path)
    }

    /// Whether a `database` setting is a PostgreSQL URL rather than a SQLite file.
    public static func isDatabaseURL(_ text: String) -> Bool {
        text.hasPrefix("postgresql://") || text.hasPrefix("postgres://")
    }

    public static func milliseconds(_ date: Date) -> Int64 { SQLiteStore.ms(date) }
    public static func date(milliseconds: Int64) -> Date { SQLiteStore.date(milliseconds) }
    public static func groupsText(_ groups: [String]) -> String { SQLiteStore.jsonArray(groups) }
}
