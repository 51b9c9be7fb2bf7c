/// The one error type of USPStore, in the NIOSSHError shape (docs: GUIDE §3): an extensible
/// `Code` compared alone, plus a one-line `message` for a person that names the file.
///
/// ```
/// /var/lib/uspd/usp.sqlite: not a SQLite database (file is not a database)
/// ```
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable name. Compare codes, not messages.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The file exists but is not a SQLite database.
        public static let notADatabase = Code("not_a_database")
        /// The file is a SQLite database but its content is damaged (truncated, overwritten).
        public static let corrupt = Code("corrupt")
        /// The file or its directory cannot be written (WAL needs both).
        public static let readOnly = Code("read_only")
        /// The schema was written by a newer version of USP; this code will not touch it.
        public static let schemaTooNew = Code("schema_too_new")
        /// A SQLite database of another application.
        public static let foreignDatabase = Code("foreign_database")
        /// A durability setting did not take (GUIDE rule 9).
        public static let durability = Code("durability")
        /// A write conflicts with existing data (a public key that belongs to another user, a token ID in use).
        public static let conflict = Code("conflict")
        /// The caller passed a value the store refuses (empty name, malformed record).
        public static let invalidArgument = Code("invalid_argument")
        /// A password hash string is malformed, or a password cannot be hashed (`PasswordHash`).
        public static let passwordHash = Code("password_hash")
        /// The store was closed.
        public static let closed = Code("closed")
        /// Any other SQLite or file-system error.
        public static let io = Code("io")
    }

    public var code: Code
    /// The database file (or "" when none applies).
    public var path: String
    /// One line, no trailing period, no path.
    public var message: String

    public init(_ code: Code, path: String, _ message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    /// `path: message`, or just the message when there is no path.
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}
