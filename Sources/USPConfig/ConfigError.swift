/// The one error type of USPConfig (GUIDE §3): an extensible `Code` compared alone, and a
/// one-line message for a person that says what and where:
///
/// ```
/// apps.d/ssh.toml:12:3: unknown key "visiblity" (did you mean "visibility"?)
/// ```
public struct ConfigError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The file cannot be read (missing, a directory, too large, permission denied).
        public static let unreadable = Code("unreadable")
        /// Not valid UTF-8, or not valid TOML.
        public static let syntax = Code("syntax")
        /// A key this version does not know (often a typo).
        public static let unknownKey = Code("unknown_key")
        /// A required key is absent.
        public static let missingKey = Code("missing_key")
        /// A value of the wrong TOML type.
        public static let wrongType = Code("wrong_type")
        /// A number outside its allowed range.
        public static let outOfRange = Code("out_of_range")
        /// A value of the right type that is still not acceptable (a bad address, name or type string).
        public static let invalidValue = Code("invalid_value")
        /// Two application files define the same name.
        public static let duplicateName = Code("duplicate_name")
        /// A key file readable by group or others, or not a regular file.
        public static let insecurePermissions = Code("insecure_permissions")
    }

    public var code: Code
    /// The file, as given to the loader.
    public var path: String
    /// 1-based line and column (in Unicode scalars) of the offending key or value, when known.
    public var line: Int?
    public var column: Int?
    /// One line, without the path.
    public var message: String

    public init(_ code: Code, path: String, line: Int? = nil, column: Int? = nil, _ message: String) {
        self.code = code
        self.path = path
        self.line = line
        self.column = column
        self.message = message
    }

    /// `path:line:column: message`, or `path: message` when there is no position.
    public var description: String {
        if let line, let column { return "\(path):\(line):\(column): \(message)" }
        if let line { return "\(path):\(line): \(message)" }
        return "\(path): \(message)"
    }
}
