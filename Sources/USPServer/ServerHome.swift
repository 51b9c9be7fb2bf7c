import Foundation
import USPConfig
import USPCore
import USPStore

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's data directory (`./usp-data` by default, `--data-dir`, `$STATE_DIRECTORY` under
/// systemd): the host key, the SQLite database, `apps.d/` and an optional `uspd.toml`.
///
/// ```
/// usp-data/            0700
///   host_key           0600  base64url of the 32-byte X25519 private key, one line
///   usp.sqlite         the store (WAL: usp.sqlite-wal, usp.sqlite-shm beside it)
///   apps.d/*.toml      one application each
///   uspd.toml          optional; every key has a default
/// ```
public struct ServerHome: Sendable {
    public let directory: String
    public let config: ServerConfig

    public init(directory: String, config: ServerConfig = ServerConfig()) {
        self.directory = directory
        self.config = config
    }

    public var configPath: String { Self.join(directory, "uspd.toml") }
    public var hostKeyPath: String { Self.join(directory, config.hostKey) }
    /// The SQLite file (meaningless when `databaseURL` is set).
    public var databasePath: String { Self.join(directory, config.database) }
    /// The PostgreSQL URL when `database` is one, else nil (SQLite).
    public var databaseURL: String? { StoreRules.isDatabaseURL(config.database) ? config.database : nil }
    /// The file holding the PostgreSQL password (`database_password_file`), if configured.
    public var databasePasswordFilePath: String? { config.databasePasswordFile.map { Self.join(directory, $0) } }
    /// The disk space reserve (`audit_reserve`), beside the database so it is on the same file
    /// system; none with PostgreSQL (the database server's disk is not this host's).
    public var reservePath: String? { databaseURL == nil ? databasePath + ".reserve" : nil }
    /// This uspd's name in the audit trail: `node_name`, else the host name.
    public var nodeName: String { config.nodeName ?? Self.hostName() }
    /// The control socket of a running uspd (`uspd status`, `uspd sessions`).
    public var adminSocketPath: String { Self.join(directory, "uspd.sock") }
    public var appsDirectory: String { Self.join(directory, config.appsDirectory) }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "uspd" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "uspd" : String(name.prefix(64))
    }

    static func join(_ dir: String, _ path: String) -> String {
        path.hasPrefix("/") ? path : (dir as NSString).appendingPathComponent(path)
    }

    public struct HomeError: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// Whether the directory has been initialised (it has a host key).
    public var exists: Bool { FileManager.default.fileExists(atPath: hostKeyPath) }

    /// Creates the directory (0700), a new host key (0600) and the sample `apps.d`, leaving
    /// anything that already exists alone. Returns what it created, for the user.
    @discardableResult
    public func create() throws -> [String] {
        var created: [String] = []
        let fm = FileManager.default
        if !fm.fileExists(atPath: directory) {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            created.append(directory)
        }
        if !fm.fileExists(atPath: hostKeyPath) {
            _ = try Self.generateHostKey(at: hostKeyPath)
            created.append(hostKeyPath)
        }
        if !fm.fileExists(atPath: appsDirectory) {
            try fm.createDirectory(atPath: appsDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            for (name, text) in Self.sampleApplications {
                let path = Self.join(appsDirectory, name)
                try Data(text.utf8).write(to: URL(fileURLWithPath: path))
                created.append(path)
            }
        }
        return created
    }

    // MARK: - Host key

    /// Writes a new X25519 host key, readable only by its owner; refuses to overwrite.
    public static func generateHostKey(at path: String) throws -> KeyPair {
        let key = KeyPair.generate(using: SystemRandomSource())
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw HomeError("\(path): cannot create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let text = Array((Base64URL.encode(key.privateKey) + "\n").utf8)
        let n = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == text.count, fsync(fd) == 0 else { throw HomeError("\(path): cannot write: \(String(cString: strerror(errno)))") }
        return key
    }

    /// Reads the host key; refuses a file that group or others can read or write, as ssh does.
    public static func loadHostKey(at path: String) throws -> KeyPair {
        var st = stat()
        guard stat(path, &st) == 0 else { throw HomeError("\(path): \(String(cString: strerror(errno)))") }
        let mode = st.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw HomeError("\(path): permissions \(String(mode, radix: 8)) are too open: a host key must not be accessible by group or others (chmod 600 \(path))")
        }
        guard let data = FileManager.default.contents(atPath: path),
              let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
              let bytes = Base64URL.decode(text), bytes.count == 32, let key = try? KeyPair(privateKey: bytes) else {
            throw HomeError("\(path): not a host key (one line of base64url, 32 bytes)")
        }
        return key
    }

    /// `usp://SERVERKEY@host:port`, the address clients use (the key pins the server: IK or NK).
    public static func uri(serverKey: [UInt8], host: String, port: Int) -> String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "usp://\(Base64URL.encode(serverKey))@\(h):\(port)"
    }

    // MARK: - Samples

    /// The sample registry: two public applications and one that only logged-in users see.
    public static let sampleApplications: [(String, String)] = [
        ("echo.toml", """
        # Sends every byte back (one /bin/cat per session).
        name = "echo"
        description = "Sends your bytes back"
        visibility = "public"

        [launch]
        exec = ["/bin/cat"]
        # When uspd runs as root, confine it further:
        # sandbox = "no-network"
        # user = "nobody"

        [limits]
        max_sessions = 64
        token_lifetime = 60

        [rlimits]
        max_open_files = 16
        max_cpu_seconds = 600

        """),
        ("time.toml", """
        # Writes the server's clock and ends.
        name = "time"
        description = "The server's clock (UTC)"
        visibility = "public"

        [launch]
        exec = ["/bin/date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]

        """),
        ("whoami.toml", """
        # Only logged-in users see this one: it tells them who the server thinks they are (and, for a
        # brokered token, which broker let them in).
        name = "whoami"
        description = "Who the server thinks you are"
        visibility = "authenticated"

        [expected_request_body]
        note = "string?"

        [launch]
        exec = ["/bin/sh", "-c", "echo \\"identity=$USP_IDENTITY address=$USP_PEER_ADDRESS session=$USP_SESSION note=$USP_FIELD_NOTE${USP_BROKERED_FOR:+ brokered_for=$USP_BROKERED_FOR}\\""]

        """),
    ]
}
