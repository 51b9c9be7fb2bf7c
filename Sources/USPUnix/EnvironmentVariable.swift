import Glibc

/// One environment variable, read with getenv(3).
///
/// `ProcessInfo.processInfo.environment` builds a dictionary of the whole environment (and
/// ProcessInfo itself) on first use, which cost a short `usp connect` more than reading the two or
/// three variables it needs.
public enum EnvironmentVariable {
    /// The value of `name` as it is now (after any unsetenv), or nil when it is not set.
    public static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        return String(cString: raw)
    }

    /// A lookup from `environment` when it is given (tests), else from the process's environment.
    public static func lookup(_ environment: [String: String]?) -> (String) -> String? {
        guard let environment else { return value }
        return { environment[$0] }
    }
}
