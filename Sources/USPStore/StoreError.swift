import USPErrors

/// The one error type of USPStore: a `Code` (compare codes, not messages), and a one-line
/// `message` for a person that names the file.
///
/// ```
/// /var/lib/uspd/usp.sqlite: not a SQLite database (file is not a database)
/// ```
public struct StoreError: CodedError {
    public typealias Code = ErrorCode<StoreError>

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

extension ErrorCode<StoreError> {
    /// The file exists but is not a SQLite database.
    public static var notADatabase: Self { Self("not_a_database") }
    /// The file is a SQLite database but its content is damaged (truncated, overwritten).
    public static var corrupt: Self { Self("corrupt") }
    /// The file or its directory cannot be written (WAL needs both).
    public static var readOnly: Self { Self("read_only") }
    /// The schema was written by a newer version of USP; this code will not touch it.
    public static var schemaTooNew: Self { Self("schema_too_new") }
    /// A SQLite database of another application.
    public static var foreignDatabase: Self { Self("foreign_database") }
    /// A durability setting did not take: the journal is not WAL, or `synchronous` is not FULL.
    public static var durability: Self { Self("durability") }
    /// A write conflicts with existing data (a public key that belongs to another user, a token ID in use).
    public static var conflict: Self { Self("conflict") }
    /// The caller passed a value the store refuses (empty name, malformed record).
    public static var invalidArgument: Self { Self("invalid_argument") }
    /// A password hash string is malformed, or a password cannot be hashed (`PasswordHash`).
    public static var passwordHash: Self { Self("password_hash") }
    /// The store was closed.
    public static var closed: Self { Self("closed") }
    /// The disk (or the file system's quota) is full.
    public static var full: Self { Self("full") }
    /// Any other SQLite or file-system error.
    public static var io: Self { Self("io") }
}
