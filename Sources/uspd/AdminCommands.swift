import ArgumentParser
import Foundation
import USPConfig
import USPCore
import USPServer
import USPStore
import USPStorePostgres

#if canImport(Glibc)
import Glibc
#endif

// MARK: - user

struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "user", abstract: "Manage users.", subcommands: [Add.self, Remove.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add or update a user with a password and/or public keys.",
            discussion: """
            Keys are base64url (or base64) raw 32-byte keys: an X25519 key is the client's Noise static \
            key (login method noise_static), an Ed25519 key signs the handshake hash (method publickey). \
            An optional x25519: or ed25519: prefix only documents which.
            """)

        @OptionGroup var home: HomeOptions
        @Argument(help: "The user name.") var name: String
        @Flag(name: .customLong("password-stdin"), help: "Read the password from the first line of stdin.") var passwordStdin = false
        @Flag(name: .customLong("generate-password"), help: "Generate a password and print it once.") var generatePassword = false
        // Unconditional: a base64url key begins with "-" one time in 64, and must still be taken as the value.
        @Option(name: .customLong("key"), parsing: .unconditionalSingleValue, help: "A public key (repeatable).") var keys: [String] = []
        @Option(name: .customLong("group"), help: "A group (repeatable).") var groups: [String] = []

        func validate() throws {
            if passwordStdin && generatePassword { throw ValidationError("--password-stdin and --generate-password exclude each other") }
            if !passwordStdin && !generatePassword && keys.isEmpty {
                throw ValidationError("give a password (--password-stdin or --generate-password) or at least one --key")
            }
            for k in keys where ServerPolicy.decodeKey(k)?.count != 32 {
                throw ValidationError("--key \(k): not a base64url key of 32 bytes")
            }
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-@".contains($0)) }) else {
                throw ValidationError("user names are ASCII letters, digits and . _ - @")
            }
        }

        func run() async throws {
            let (homeDir, config, _) = try home.load()
            home.bootstrapLogging(config)
            let store = try Backend.openStore(homeDir)
            var password: String?
            if passwordStdin {
                guard let line = readLine(strippingNewline: true), !line.isEmpty else { throw Failure("no password on stdin") }
                password = line
            } else if generatePassword {
                password = GeneratedPassword.make()
            }
            var user = try store.user(named: name) ?? UserRecord(name: name)
            if let password { user.passwordHash = try Backend.hashPassword(password) }
            for k in keys {
                let normalized = Base64URL.encode(ServerPolicy.decodeKey(k)!)
                if !user.publicKeys.contains(normalized) { user.publicKeys.append(normalized) }
            }
            for g in groups where !user.groups.contains(g) { user.groups.append(g) }
            try store.upsertUser(user)
            if generatePassword, let password { print("password for \(name): \(password)") }
            print("user \(name): \(user.passwordHash == nil ? "no password" : "password set"), \(user.publicKeys.count) key(s), groups [\(user.groups.joined(separator: ", "))]")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a user.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "The user name.") var name: String

        func run() async throws {
            let (homeDir, config, _) = try home.load()
            home.bootstrapLogging(config)
            let store = try Backend.openStore(homeDir)
            guard try store.removeUser(named: name) else { throw Failure("no user \(name)") }
            // Their logins and the application tokens issued under them stop working now; a
            // running uspd sees the revocations within a second and ends their open streams.
            let revoked = try store.revokeTokens(identity: name, at: Date())
            try store.appendAudit(revoked.map {
                AuditEvent(time: Date(), kind: .tokenInvalidated, identity: name, result: "ok", tokenID: $0, detail: "user removed by an administrator")
            })
            print("removed \(name); revoked \(revoked.count) token(s)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List users.")
        @OptionGroup var home: HomeOptions
        @Flag(help: "One JSON object per user.") var json = false

        func run() async throws {
            let (homeDir, config, _) = try home.load()
            home.bootstrapLogging(config)
            let store = try Backend.openStore(homeDir)
            let users = try store.users()
            if json {
                for u in users {
                    let o: JSONValue = .object(["name": .string(u.name), "groups": .array(u.groups.map(JSONValue.string)),
                                                "password": .bool(u.passwordHash != nil),
                                                "keys": .array(u.publicKeys.map { .string(Fingerprint.of(ServerPolicy.decodeKey($0) ?? [])) })])
                    print(String(decoding: try o.encoded(), as: UTF8.self))
                }
                return
            }
            var rows = [["USER", "PASSWORD", "KEYS", "GROUPS"]]
            for u in users {
                rows.append([u.name, u.passwordHash == nil ? "-" : "yes",
                             u.publicKeys.map { Fingerprint.of(ServerPolicy.decodeKey($0) ?? []) }.joined(separator: ",").ifEmpty("-"),
                             u.groups.joined(separator: ",").ifEmpty("-")])
            }
            printTable(rows)
        }
    }
}

// MARK: - app

struct App: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "app", abstract: "Applications in apps.d.", subcommands: [List.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the applications as the daemon would load them.")
        @OptionGroup var home: HomeOptions
        @Flag(help: "One JSON object per application.") var json = false

        func run() async throws {
            let (homeDir, config, _) = try home.load()
            home.bootstrapLogging(config)
            let catalog = ApplicationCatalog(try Backend.loadApplications(directory: homeDir.appsDirectory, defaultTokenLifetime: config.applicationTokenLifetime))
            var rows = [["INDEX", "NAME", "VISIBILITY", "LAUNCH", "DESCRIPTION"]]
            for e in catalog.snapshot().entries {
                let d = e.definition
                let visibility: String
                switch d.visibility {
                case .public: visibility = "public"
                case .authenticated: visibility = "authenticated"
                case .only(let ids, let groups): visibility = (ids.sorted() + groups.sorted().map { "group:" + $0 }).joined(separator: ",")
                }
                let launch: String
                switch d.launch {
                case .exec(let command, _, let stream):
                    launch = "exec " + command.joined(separator: " ") + (stream == .stdio ? "" : " (stream \(stream.rawValue))")
                        + Self.confinement(d.isolation)
                case .unix(let path, let relayFree): launch = "unix " + path + (relayFree ? " (relay-free)" : "")
                case .tcp(let host, let port): launch = "tcp \(host.contains(":") ? "[\(host)]" : host):\(port)"
                case .udp(let host, let port): launch = "udp \(host.contains(":") ? "[\(host)]" : host):\(port)"
                }
                if json {
                    let o: JSONValue = .object(["index": .integer(Int64(e.index)), "name": .string(d.name), "visibility": .string(visibility),
                                                "launch": .string(launch), "description": .string(d.description),
                                                "token_lifetime": .integer(Int64(d.limits.tokenLifetime))])
                    print(String(decoding: try o.encoded(), as: UTF8.self))
                } else {
                    rows.append([String(e.index), d.name, visibility, launch, d.description])
                }
            }
            if !json { printTable(rows) }
        }

        /// " [sandbox no-network, user nobody (65534), group nogroup (65534), nofile 64, as 268435456, cpu 60, nproc 32]", or "".
        static func confinement(_ i: Isolation) -> String {
            var parts: [String] = []
            if i.sandbox != .none { parts.append("sandbox \(i.sandbox.rawValue)") }
            if let u = i.user { parts.append("user \(u.name) (\(u.id))") }
            if let g = i.group { parts.append("group \(g.name) (\(g.id))") }
            let r = i.rlimits
            for (name, value) in [("nofile", r.maxOpenFiles), ("as", r.maxMemory), ("cpu", r.maxCPUSeconds), ("nproc", r.maxProcesses)] {
                if let value { parts.append("\(name) \(value)") }
            }
            return parts.isEmpty ? "" : " [" + parts.joined(separator: ", ") + "]"
        }
    }
}

// MARK: - audit

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "The audit trail: show it, prune it.",
                                                    subcommands: [Show.self, Chain.self, Prune.self], defaultSubcommand: Show.self)

    /// One event as the JSON object `uspd audit --json` prints.
    static func jsonObject(_ e: AuditEvent) -> [String: JSONValue] {
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var o: [String: JSONValue] = ["time": .string(iso.string(from: e.time)), "kind": .string(e.kind.rawValue)]
        if let v = e.id { o["id"] = .integer(v) }
        let strings: [(String, String?)] = [("session", e.session), ("peer_address", e.peerAddress), ("client_key", e.clientKey),
                                            ("identity", e.identity), ("method", e.method), ("result", e.result),
                                            ("token_id", e.tokenID), ("authorization_token_id", e.authorizationTokenID),
                                            ("application", e.application), ("detail", e.detail), ("node", e.node)]
        for (k, v) in strings { if let v { o[k] = .string(v) } }
        let ints: [(String, Int64?)] = [("stream", e.stream), ("bytes_in", e.bytesIn), ("bytes_out", e.bytesOut), ("duration_ms", e.durationMS),
                                        ("count", e.count)]
        for (k, v) in ints { if let v { o[k] = .integer(v) } }
        return o
    }
}

extension Audit {
struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show the audit trail (the default).")
    @OptionGroup var home: HomeOptions
    @Option(help: "Only events of this identity.") var identity: String?
    @Option(help: "Only events since T: ISO 8601 (2026-01-02T03:04:05Z) or an age (90s, 15m, 2h, 7d).") var since: String?
    @Option(help: "At most N events (the newest).") var limit: Int?
    @Flag(help: "One JSON object per event.") var json = false

    func validate() throws {
        if let since, Self.parseSince(since, now: Date()) == nil { throw ValidationError("--since \(since): not ISO 8601 or an age like 15m") }
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive") }
    }

    static func parseSince(_ text: String, now: Date) -> Date? {
        if let d = ISO8601DateFormatter().date(from: text) { return d }
        guard let unit = text.last, let n = Double(text.dropLast()), n >= 0 else { return nil }
        let factor: Double
        switch unit {
        case "s": factor = 1
        case "m": factor = 60
        case "h": factor = 3600
        case "d": factor = 86400
        default: return nil
        }
        return now.addingTimeInterval(-n * factor)
    }

    func run() async throws {
        let (homeDir, config, _) = try home.load()
        home.bootstrapLogging(config)
        let store = try Backend.openStore(homeDir)
        let events = try store.audit(identity: identity, since: since.flatMap { Self.parseSince($0, now: Date()) }, limit: limit)
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if json {
            for e in events {
                print(String(decoding: try JSONValue.object(Audit.jsonObject(e)).encoded(), as: UTF8.self))
            }
            return
        }
        // The NODE column when the trail is a fleet's (rows from more than one node).
        let fleet = Set(events.map { $0.node ?? "-" }).count > 1
        var rows = [["TIME", "KIND", "SESSION", "PEER", "IDENTITY", "WHAT", "RESULT"] + (fleet ? ["NODE"] : [])]
        for e in events {
            var what: [String] = []
            if let n = e.count { what.append("×\(n) summarised") }
            if let m = e.method { what.append(m) }
            if let a = e.application { what.append(a) }
            if let s = e.stream { what.append("stream \(s)") }
            if let i = e.bytesIn, let o = e.bytesOut { what.append("in \(i) out \(o)") }
            if let d = e.durationMS { what.append("\(d) ms") }
            if let t = e.tokenID { what.append("token \(t.prefix(8))…") }
            if let d = e.detail, d.hasPrefix("brokered") { what.append(d) }
            if let k = e.clientKey { what.append(String(k.prefix(19)) + "…") }
            rows.append([iso.string(from: e.time), e.kind.rawValue, e.session ?? "-", e.peerAddress ?? "-", e.identity ?? "-",
                         what.joined(separator: " ").ifEmpty("-"), e.result ?? "-"] + (fleet ? [e.node ?? "-"] : []))
        }
        printTable(rows)
    }
}

struct Chain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chain",
        abstract: "Trace a stream back to a person: stream → application token → login → identity.",
        discussion: """
            SESSION and STREAM are the SESSION column and the "stream N" of uspd audit. For a brokered stream the \
            chain names the broker: the token was issued to its login, for the address the stream came from.
            """)
    @OptionGroup var home: HomeOptions
    @Argument(help: "The server session ID (s-…).") var session: String
    @Argument(help: "The stream number in that session.") var stream: Int64
    @Flag(help: "Print one JSON object.") var json = false

    func run() async throws {
        let (homeDir, config, _) = try home.load()
        home.bootstrapLogging(config)
        let store = try Backend.openStore(homeDir)
        guard let chain = try store.auditChain(streamSession: session, stream: stream) else {
            throw ValidationError("no stream \(stream) of session \(session) in the audit trail of \(store.location)")
        }
        if json {
            var o: [String: JSONValue] = ["stream": .array(chain.streamEvents.map { .object(Audit.jsonObject($0)) })]
            if let e = chain.applicationTokenIssued { o["application_token"] = .object(Audit.jsonObject(e)) }
            if let e = chain.authorizationTokenIssued { o["authorization_token"] = .object(Audit.jsonObject(e)) }
            if let e = chain.authentication { o["authentication"] = .object(Audit.jsonObject(e)) }
            if let i = chain.identity { o["identity"] = .string(i) }
            print(String(decoding: try JSONValue.object(o).encoded(), as: UTF8.self))
            return
        }
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        func at(_ e: AuditEvent) -> String {
            "\(iso.string(from: e.time)) session \(e.session ?? "-") from \(e.peerAddress ?? "-")" + (e.node.map { " on \($0)" } ?? "")
        }
        var rows: [[String]] = []
        for e in chain.streamEvents {
            var what = "\(e.kind.rawValue) \(e.application ?? "-") stream \(e.stream ?? 0), \(at(e))"
            if let r = e.result { what += ", \(r)" }
            if let i = e.bytesIn, let o = e.bytesOut { what += ", in \(i) out \(o)" }
            if let d = e.detail { what += " (\(d))" }
            rows.append(["stream", e.tokenID.map { "token \($0)" } ?? "-", what])
        }
        if let e = chain.applicationTokenIssued {
            rows.append(["token", e.tokenID ?? "-", "application token for \(e.application ?? "-") issued \(at(e))" + (e.detail.map { " (\($0))" } ?? "")])
        } else {
            rows.append(["token", "-", "the application token's issue is not in the trail"])
        }
        if let e = chain.authorizationTokenIssued {
            rows.append(["login", e.tokenID ?? "-", "authorization token issued \(at(e))"])
        } else {
            rows.append(["login", "-", "none (a public application used without login), or not in the trail"])
        }
        if let e = chain.authentication {
            rows.append(["identity", chain.identity ?? "-", "\(e.method ?? "-") login \(at(e))"])
        } else {
            rows.append(["identity", chain.identity ?? "-", chain.identity == nil ? "nobody" : "from the token records"])
        }
        printTable(rows)
    }
}

struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete old audit rows now (uspd also does it every 10 minutes).",
        discussion: """
            Without options, applies audit_max_age and audit_max_size from uspd.toml. Rows younger than \
            authorization_token_lifetime are never deleted, so every live token keeps its whole trail.
            """)
    @OptionGroup var home: HomeOptions
    @Option(name: .customLong("older-than"), help: "Delete rows older than this age (90s, 15m, 2h, 30d); overrides audit_max_age.")
    var olderThan: String?
    @Option(name: .customLong("max-size"), help: "Keep the trail under this size (500K, 64M, 2G); overrides audit_max_size.")
    var maxSize: String?
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        if let olderThan, olderThan.contains("T") || Show.parseSince(olderThan, now: Date()) == nil {
            throw ValidationError("--older-than \(olderThan): not an age like 30d")
        }
        if let maxSize, Self.parseSize(maxSize) == nil { throw ValidationError("--max-size \(maxSize): not a size like 64M") }
    }

    static func parseSize(_ text: String) -> Int64? {
        let units: [Character: Double] = ["K": 1024, "M": 1_048_576, "G": 1_073_741_824]
        if let last = text.last, let unit = units[Character(last.uppercased())], let n = Double(text.dropLast()), n >= 0 {
            return Int64(n * unit)
        }
        return Int64(text).flatMap { $0 >= 0 ? $0 : nil }
    }

    func run() async throws {
        let (homeDir, config, _) = try home.load()
        home.bootstrapLogging(config)
        var retention = AuditRetention(config: config)
        let now = Date()
        if let olderThan, let cut = Show.parseSince(olderThan, now: now) { retention.maxAge = now.timeIntervalSince(cut) }
        if let maxSize { retention.maxBytes = Self.parseSize(maxSize) }
        let store = try Backend.openStore(homeDir)
        let result = try retention.prune(store, now: now)
        if json {
            print(#"{"deleted":\#(result.deleted),"rows_left":\#(result.rowsLeft),"bytes_left":\#(result.bytesLeft)}"#)
        } else {
            print("deleted \(result.deleted) audit row(s); \(result.rowsLeft) left, \(result.bytesLeft / 1024) KiB")
            if let max = retention.maxBytes, result.bytesLeft > max {
                print("still over \(max / 1024) KiB: the rest is younger than authorization_token_lifetime (\(config.authorizationTokenLifetime) s) and is kept")
            }
        }
    }
}
}


// MARK: - helpers

extension String {
    func ifEmpty(_ other: String) -> String { isEmpty ? other : self }
}

/// Aligned columns (the last one is not padded).
func printTable(_ rows: [[String]]) {
    guard let columns = rows.map(\.count).max() else { return }
    var widths = [Int](repeating: 0, count: columns)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    for r in rows {
        var line = ""
        for (i, c) in r.enumerated() {
            line += i == r.count - 1 ? c : c.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0)
        }
        print(line)
    }
}

// MARK: - store

struct Store: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "store", abstract: "The store: moving it to PostgreSQL.", subcommands: [Migrate.self])

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "migrate",
            abstract: "Copy the data directory's SQLite store (users, tokens, audit trail) into an empty PostgreSQL database.",
            discussion: """
            One transaction: everything is copied or, on any error, nothing. The database must be \
            empty of USP data (uspd creates its tables). Stop uspd first, so that nothing is written \
            to the SQLite file meanwhile; then set database = URL in uspd.toml (docs/FLEET.md). The \
            password comes from --password-file, $USPD_DATABASE_PASSWORD or $PGPASSWORD.
            """)

        @OptionGroup var home: HomeOptions
        @Option(name: .customLong("to"), help: "postgresql://USER@HOST[:PORT]/DB (no password in it).") var target: String
        @Option(name: .customLong("password-file"), help: "The database password, one line.") var passwordFile: String?
        @Option(name: .customLong("from"), help: "The SQLite file (default: the data directory's).") var source: String?

        func run() async throws {
            let (homeDir, _, _) = try home.load()
            let path = source ?? homeDir.databasePath
            guard source != nil || homeDir.databaseURL == nil else {
                throw Failure("the data directory's database is already PostgreSQL (\(homeDir.config.database)); give --from FILE")
            }
            guard FileManager.default.fileExists(atPath: path) else { throw Failure("\(path): no such file") }
            do {
                let from = try SQLiteStore(path: path)
                // Rows written before nodes were recorded came from this host.
                let to = try Backend.openPostgres(target, passwordFile: passwordFile, node: homeDir.nodeName)
                defer { to.close() }
                let counts = try to.importEverything(from: from) { done in
                    FileHandle.standardError.write(Data("\rcopied \(done.users) user(s), \(done.tokens) token(s), \(done.auditRows) audit row(s)".utf8))
                }
                FileHandle.standardError.write(Data("\n".utf8))
                print("copied \(counts.users) user(s), \(counts.tokens) token(s) and \(counts.auditRows) audit row(s) from \(path) to \(to.location)")
                print("next: set database = \"\(to.location)\" in \(homeDir.configPath) and start uspd")
            } catch let e as Failure {
                throw e
            } catch {
                throw Failure("\(error)")
            }
        }
    }
}
