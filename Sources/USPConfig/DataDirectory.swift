import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The daemon's data directory (`uspd --data-dir`, default `./usp-data`) and the paths in it:
///
/// ```
/// usp-data/
///   uspd.toml          configuration (optional: defaults apply when absent)
///   apps.d/*.toml      applications (uspd.toml apps_dir)
///   usp.sqlite         users, tokens, audit (uspd.toml database)
///   host_key           the server's static key, mode 0600 (uspd.toml host_key)
/// ```
///
/// Paths in uspd.toml are relative to the data directory unless absolute. The directory is
/// resolved once, against the current directory, so later `chdir` calls change nothing.
public struct DataDirectory: Hashable, Sendable {
    /// Used when `--data-dir` is not given.
    public static let defaultPath = "usp-data"

    /// Absolute, without a trailing slash.
    public let root: String

    /// - Parameters:
    ///   - argument: the `--data-dir` value, or nil for `./usp-data`.
    ///   - currentDirectory: what a relative path is relative to.
    public init(resolving argument: String?, currentDirectory: String = FileManager.default.currentDirectoryPath) {
        let given = (argument?.isEmpty == false ? argument! : Self.defaultPath)
        let absolute = given.hasPrefix("/") ? given : Self.join(currentDirectory, given)
        root = Self.normalise(absolute)
    }

    /// `root/uspd.toml`.
    public var configPath: String { Self.join(root, "uspd.toml") }
    public func appsDirectory(_ config: ServerConfig) -> String { resolve(config.appsDirectory) }
    public func databasePath(_ config: ServerConfig) -> String { resolve(config.database) }
    public func hostKeyPath(_ config: ServerConfig) -> String { resolve(config.hostKey) }

    /// `path` if absolute, else under `root`.
    public func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? Self.normalise(path) : Self.normalise(Self.join(root, path))
    }

    /// Creates the data directory (mode 0700) and the applications directory (0755) if missing,
    /// with their parents. Existing directories keep their modes.
    public func create(config: ServerConfig = ServerConfig()) throws(ConfigError) {
        try Self.makeDirectories(root, mode: 0o700)
        try Self.makeDirectories(appsDirectory(config), mode: 0o755)
    }

    /// `mkdir -p`, the last component with `mode` (exactly: the umask does not apply).
    static func makeDirectories(_ path: String, mode: mode_t) throws(ConfigError) {
        var st = stat()
        if stat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFDIR else { throw ConfigError(.unreadable, path: path, "exists but is not a directory") }
            return
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != path { try makeDirectories(parent, mode: 0o755) }
        guard mkdir(path, mode) == 0 || errno == EEXIST else {
            throw ConfigError(.unreadable, path: path, "cannot create the directory: \(String(cString: strerror(errno)))")
        }
        chmod(path, mode)
    }

    /// Refuses, as ssh does, a key file that group or others may read or write, or that is not a
    /// regular file. The message says what to run:
    ///
    /// ```
    /// usp-data/host_key: permissions 0644 are too open: a key file must not be accessible by group or others (chmod 600 usp-data/host_key)
    /// ```
    public static func ensureSecurePermissions(path: String) throws(ConfigError) {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw ConfigError(.unreadable, path: path, "cannot open the key file: \(String(cString: strerror(errno)))")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw ConfigError(.insecurePermissions, path: path, "the key file is not a regular file")
        }
        let mode = Int(st.st_mode) & 0o7777
        if mode & 0o077 != 0 {
            throw ConfigError(.insecurePermissions, path: path,
                "permissions \(String(format: "%04o", mode)) are too open: a key file must not be accessible by group or others (chmod 600 \(path))")
        }
    }

    static func join(_ a: String, _ b: String) -> String {
        a.hasSuffix("/") ? a + b : a + "/" + b
    }

    /// Removes `.` segments, empty segments and trailing slashes (not `..`: symlinks make it unsafe).
    static func normalise(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        return "/" + parts.joined(separator: "/")
    }
}
