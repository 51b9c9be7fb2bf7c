import USPErrors

/// The one error type of USPConfig: a `Code`, and a one-line message for a person that says
/// what and where:
///
/// ```
/// apps.d/ssh.toml:12:3: unknown key "visiblity" (did you mean "visibility"?)
/// ```
public struct ConfigError: CodedError {
    public typealias Code = ErrorCode<ConfigError>

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

extension ErrorCode<ConfigError> {
    /// The file cannot be read (missing, a directory, too large, permission denied).
    public static var unreadable: Self { Self("unreadable") }
    /// Not valid UTF-8, or not valid TOML.
    public static var syntax: Self { Self("syntax") }
    /// A key this version does not know (often a typo).
    public static var unknownKey: Self { Self("unknown_key") }
    /// A required key is absent.
    public static var missingKey: Self { Self("missing_key") }
    /// A value of the wrong TOML type.
    public static var wrongType: Self { Self("wrong_type") }
    /// A number outside its allowed range.
    public static var outOfRange: Self { Self("out_of_range") }
    /// A value of the right type that is still not acceptable (a bad address, name or type string).
    public static var invalidValue: Self { Self("invalid_value") }
    /// Two application files define the same name.
    public static var duplicateName: Self { Self("duplicate_name") }
    /// A key file readable by group or others, or not a regular file.
    public static var insecurePermissions: Self { Self("insecure_permissions") }
}
