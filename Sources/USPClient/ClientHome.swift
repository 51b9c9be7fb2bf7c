import FoundationEssentials
import Glibc
import USPCore
import USPUnix

/// The client's state directory: `--home DIR`, else `$USP_HOME`, else `~/.usp`.
///
///     identity            the client's X25519 private key, base64url, mode 0600
///     identity.pub        its public key, base64url
///     known_servers       one line per server: host:port x25519 <key> [comment]
///     tokens/<host_port>.json   the saved login (authorization token secret), mode 0600
///     config              host aliases and defaults, ssh_config syntax (ClientConfig); optional
public struct ClientHome: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
    }

    /// `explicit` (from `--home`), else `USP_HOME`, else `$HOME/.usp`.
    /// `environment` replaces the process's (tests).
    public static func resolve(explicit: String? = nil, environment: [String: String]? = nil) -> ClientHome {
        if let explicit, !explicit.isEmpty { return ClientHome(directory: explicit) }
        let variable = EnvironmentVariable.lookup(environment)
        if let env = variable("USP_HOME"), !env.isEmpty { return ClientHome(directory: env) }
        return ClientHome(directory: userHome(environment: environment) + "/.usp")
    }

    /// `$HOME` when set and not empty, else the password database's home directory.
    public static func userHome(environment: [String: String]? = nil) -> String {
        EnvironmentVariable.lookup(environment)("HOME").flatMap { $0.isEmpty ? nil : $0 } ?? passwordDatabaseHome()
    }

    /// The user's home directory from the password database (when $HOME is unset), else /.
    public static func passwordDatabaseHome() -> String {
        guard let entry = getpwuid(geteuid()), let dir = entry.pointee.pw_dir else { return "/" }
        let home = String(cString: dir)
        return home.isEmpty ? "/" : home
    }

    public var identityPath: String { directory + "/identity" }
    public var publicIdentityPath: String { directory + "/identity.pub" }
    public var knownServersPath: String { directory + "/known_servers" }
    public var tokensDirectory: String { directory + "/tokens" }
    public var configPath: String { directory + "/config" }

    /// Creates the directory (mode 0700) if it is missing.
    public func prepare() throws(USPClientError) {
        try FileIO.makeDirectory(directory)
    }

    /// Reads a small text file (a password file, say); errors name the file and the reason.
    public static func readTextFile(_ path: String, what: String) throws(USPClientError) -> String {
        try FileIO.readText(path, what: what)
    }

    // MARK: - Identity

    public var hasIdentity: Bool { FileIO.exists(identityPath) }

    /// The identity key, or nil if there is none. A key file that group or others can read is
    /// refused, as ssh refuses one.
    public func loadIdentity() throws(USPClientError) -> KeyPair? {
        guard hasIdentity else { return nil }
        let text = try FileIO.readText(identityPath, privateFile: true, what: "the private key")
        return try KeyText.privateKey(text, source: identityPath)
    }

    /// Writes a new identity key (0600) and its public half. Refuses to replace one unless `overwrite`.
    public func writeIdentity(_ key: KeyPair, overwrite: Bool = false) throws(USPClientError) {
        try prepare()
        if hasIdentity, !overwrite {
            throw USPClientError(.localFile, "\(identityPath) already exists; remove it first to make a new key (servers that know the old key will not know the new one)")
        }
        try FileIO.writeText(identityPath, Base64URL.encode(key.privateKey) + "\n", mode: 0o600, what: "the private key")
        try FileIO.writeText(publicIdentityPath, Base64URL.encode(key.publicKey) + "\n", mode: 0o644, what: "the public key")
    }

    // MARK: - Known servers

    public func loadKnownServers() throws(USPClientError) -> KnownServers {
        guard FileIO.exists(knownServersPath) else { return KnownServers(path: knownServersPath) }
        return try KnownServers(parsing: try FileIO.readText(knownServersPath, what: "known_servers"), path: knownServersPath)
    }

    /// Appends `host:port x25519 KEY comment` to known_servers.
    public func addKnownServer(_ hostPort: String, key: [UInt8], comment: String? = nil) throws(USPClientError) {
        try prepare()
        var text = FileIO.exists(knownServersPath) ? try FileIO.readText(knownServersPath, what: "known_servers") : ""
        if !text.isEmpty, !text.hasSuffix("\n") { text += "\n" }
        text += KnownServers.line(hostPort: hostPort, key: key, comment: comment) + "\n"
        try FileIO.writeText(knownServersPath, text, mode: 0o644, what: "known_servers")
    }

    /// Removes every (non-@revoked) line whose host pattern is exactly `hostPort`; returns how many.
    @discardableResult
    public func removeKnownServer(_ hostPort: String) throws(USPClientError) -> Int {
        guard FileIO.exists(knownServersPath) else { return 0 }
        let text = try FileIO.readText(knownServersPath, what: "known_servers")
        var kept: [Substring] = []
        var removed = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if let entry = try? KnownServers.parseLine(line), !entry.revoked, entry.patterns.contains(hostPort.lowercased()) {
                removed += 1
                continue
            }
            kept.append(line)
        }
        if removed > 0 { try FileIO.writeText(knownServersPath, kept.joined(separator: "\n"), mode: 0o644, what: "known_servers") }
        return removed
    }

    // MARK: - Saved logins (authorization tokens)

    /// `tokens/<host_port>.json`, with characters that are not safe in a file name replaced.
    public func tokenPath(for server: ServerURI) -> String {
        let safe = String("\(server.host)_\(server.port)".map { c in
            c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "-" || c == "_") ? c : "-"
        })
        return tokensDirectory + "/" + safe + ".json"
    }

    public func loadLogin(for server: ServerURI) throws(USPClientError) -> SavedLogin? {
        let path = tokenPath(for: server)
        guard FileIO.exists(path) else { return nil }
        let bytes = try FileIO.read(path, privateFile: true, what: "the saved login")
        guard let login = SavedLogin(json: bytes) else {
            throw USPClientError(.localFile, "\(path) is not a saved login; remove it and log in again")
        }
        return login
    }

    public func saveLogin(_ login: SavedLogin, for server: ServerURI) throws(USPClientError) {
        try prepare()
        try FileIO.makeDirectory(tokensDirectory)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        guard let data = try? encoder.encode(login) else { throw USPClientError(.localFile, "cannot encode the saved login") }
        try FileIO.write(tokenPath(for: server), Array(data) + [0x0A], mode: 0o600, what: "the saved login")
    }

    /// Forgets the saved login; true if there was one.
    @discardableResult
    public func removeLogin(for server: ServerURI) -> Bool {
        FileIO.remove(tokenPath(for: server))
    }
}

/// A login kept in the token cache: the authorization token secret and who it belongs to.
public struct SavedLogin: Codable, Hashable, Sendable {
    /// `host:port` of the server that issued it.
    public var server: String
    /// The user name, for password logins.
    public var user: String?
    /// `password` or `noise_static`.
    public var method: String
    /// The authorization token secret (`usp1.…`). Never sent: the client sends presentations.
    public var token: String
    /// The token's ID (base64url), to name it in revocations and listings.
    public var tokenID: String
    /// When it was saved, seconds since the epoch.
    public var savedAt: UInt64

    public init(server: String, user: String?, method: String, token: String, savedAt: UInt64) {
        self.server = server
        self.user = user
        self.method = method
        self.token = token
        self.tokenID = (try? TokenProof.tokenID(secret: token).description) ?? ""
        self.savedAt = savedAt
    }

    enum CodingKeys: String, CodingKey {
        case server, user, method, token
        case tokenID = "token_id"
        case savedAt = "saved_at"
    }

    /// Reads the file `ClientHome.saveLogin` writes (what Codable reads, with USPCore's parser:
    /// `usp connect` reads a saved login at every start, and Foundation's JSONDecoder costs more
    /// than the rest of that read). Nil for anything else.
    public init?(json bytes: [UInt8]) {
        guard let object = try? JSONValue.parse(bytes).objectValue,
              let server = object["server"]?.stringValue, let method = object["method"]?.stringValue,
              let token = object["token"]?.stringValue, let tokenID = object["token_id"]?.stringValue,
              let savedAt = object["saved_at"]?.integerValue, savedAt >= 0 else { return nil }
        let user = object["user"]
        guard user == nil || user!.isNull || user!.stringValue != nil else { return nil }
        self.server = server
        self.user = user?.stringValue
        self.method = method
        self.token = token
        self.tokenID = tokenID
        self.savedAt = UInt64(savedAt)
    }
}

/// Keys as text: base64url (unpadded), 32 bytes.
public enum KeyText {
    /// A new random X25519 key pair.
    public static func generate() -> KeyPair { KeyPair.generate(using: SystemRandomSource()) }

    public static func encode(_ key: [UInt8]) -> String { Base64URL.encode(key) }

    /// Parses a private key (first non-comment line of `text`).
    public static func privateKey(_ text: String, source: String) throws(USPClientError) -> KeyPair {
        guard let bytes = firstKey(text), bytes.count == 32, let key = try? KeyPair(privateKey: bytes) else {
            throw USPClientError(.localFile, "\(source) does not hold an X25519 private key (base64url of 32 bytes); make one with usp keygen or usp genkey")
        }
        return key
    }

    /// Parses a public key (first non-comment line of `text`), in base64url or standard base64.
    public static func publicKey(_ text: String, source: String) throws(USPClientError) -> [UInt8] {
        guard let bytes = firstKey(text), bytes.count == 32 else {
            throw USPClientError(.invalidArgument, "\(source) is not an X25519 key (base64url of 32 bytes)")
        }
        return bytes
    }

    /// The first field of the first line that is neither blank nor a comment, decoded. Plain
    /// Swift on the bytes (no Foundation): `usp connect` reads a key at every start.
    static func firstKey(_ text: String) -> [UInt8]? {
        let blank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
        for line in text.utf8.split(separator: 0x0A) {
            let t = line.drop(while: blank)
            if t.isEmpty || t.first == UInt8(ascii: "#") { continue }
            // Accept standard base64 too (wg's form), padded or not.
            let field = t.prefix { !blank($0) }.compactMap { (b: UInt8) -> UInt8? in
                switch b {
                case UInt8(ascii: "+"): UInt8(ascii: "-")
                case UInt8(ascii: "/"): UInt8(ascii: "_")
                case UInt8(ascii: "="): nil
                default: b
                }
            }
            return Base64URL.decode(String(decoding: field, as: UTF8.self))
        }
        return nil
    }

    /// `SHA256:<base64>`, as OpenSSH prints fingerprints.
    public static func fingerprint(_ key: [UInt8]) -> String { Fingerprint.of(key) }
}
