import Foundation
import TOMLKit

/// Loads `uspd.toml` (the shape is in `ServerConfig`'s doc comment). Every key is optional; an
/// unknown key, a value of the wrong type or out of range is an error naming the file, line and
/// column. When a file has several problems, the one earliest in the file is thrown;
/// `problems(path:)` lists them all.
///
/// Ranges:
/// - `listen`: an array of `host:port` (`[v6]:port` for IPv6), port 0…65535 (0: any free port).
///   It may be empty when every socket comes from systemd.
/// - `apps_dir`, `database`, `host_key`: non-empty strings (relative to the data directory).
/// - `node_name`: 1-64 characters of `A-Z a-z 0-9 . _ -`.
/// - `handshake_timeout`: more than 0 and at most 600 seconds.
/// - `idle_timeout`: 0 (never) to 604800 seconds (a week); `anonymous_session_lifetime`: 0 (never) to 86400 s.
/// - `max_connections`: 1…1,048,576; `max_unauthenticated`: 1…`max_connections`.
/// - `handshake_rate`: more than 0 and at most 1,000,000 per second; `handshake_burst`: 1…1,000,000.
///   The same for `known_handshake_rate` and `known_handshake_burst`; `known_source_time`: 0…604,800 s.
/// - `source_prefix_v4`: 8…32; `source_prefix_v6`: 16…128.
/// - `max_connections_per_source`: 0…1,048,576; `max_streams_per_minute`, `max_streams_per_identity`,
///   `max_streams_per_application`: 0…1,000,000 (0: no limit).
/// - `authorization_token_lifetime`: 1…31,536,000 s (a year); `application_token_lifetime`: 1…86,400 s.
/// - `login_token_binding`: none, prefix or address.
/// - `login_delay_base`: 0…60 s; `login_delay_max`: `login_delay_base`…3,600 s;
///   `login_delay_identity_max`: 0…60 s; `login_reply_min`: 0…10 s; `login_reply_max`: `login_reply_min`…10 s.
/// - `audit_max_age`: 0…36,500 days; `audit_max_size`: 0 or 1…1,048,576 MiB; `audit_summary_interval`:
///   1…86,400 s; `audit_reserve`: 0…65,536 MiB.
/// - `metrics_listen`: `host:port` (port 1…65535) or "" (off).
/// - `log_level`: trace, debug, info, notice, warning, error or critical (swift-log's levels).
/// - `[[broker]]`: `who` (required, non-empty: identities and `group:NAME`), `clients` (required,
///   non-empty: CIDR networks or addresses, host bits clear), `tokens_per_minute` 1…10,000 (30),
///   `token_lifetime` 1…3,600 s (60).
public enum ServerConfigLoader {
    public static let keys = [
        "listen", "apps_dir", "database", "database_password_file", "node_name", "host_key", "allow_first_contact", "tcp_fast_open", "handshake_timeout",
        "silent_hold_min", "silent_hold_max", "silent_hold_distribution", "max_silent_holds", "idle_timeout", "anonymous_session_lifetime", "max_connections",
        "max_unauthenticated", "handshake_rate", "handshake_burst", "known_handshake_rate", "known_handshake_burst", "known_source_time", "max_connections_per_source", "source_prefix_v4", "source_prefix_v6", "max_streams_per_minute",
        "max_streams_per_identity", "max_streams_per_application", "authorization_token_lifetime",
        "application_token_lifetime", "login_token_binding", "login_delay_base", "login_delay_max", "login_delay_identity_max",
        "login_reply_min", "login_reply_max",
        "audit_max_age", "audit_max_size", "audit_summary_interval", "audit_reserve", "log_level", "metrics_listen", "broker",
    ]
    public static let brokerKeys = ["who", "clients", "tokens_per_minute", "token_lifetime"]
    public static let loginTokenBindings = ["none", "prefix", "address"]
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// Why `name` cannot be a `node_name` (nil: it can): 1-64 characters of `A-Z a-z 0-9 . _ -`,
    /// so that it reads the same in a log line, a table and JSON.
    public static func nodeNameProblem(_ name: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= 64 else { return "must be 1 to 64 characters long" }
        let allowed = name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D
        }
        return allowed ? nil : "\"\(name)\" may hold only letters, digits, '.', '_' and '-'"
    }

    /// Reads and validates the file at `path`.
    public static func load(path: String) throws(ConfigError) -> ServerConfig {
        let reader = try TOMLReader(path: path)
        let config = read(reader)
        if let e = reader.firstError { throw e }
        return config
    }

    /// The defaults when `path` does not exist; otherwise as `load(path:)`.
    public static func loadIfPresent(path: String) throws(ConfigError) -> ServerConfig {
        var st = stat()
        if lstat(path, &st) != 0 && errno == ENOENT { return ServerConfig() }
        return try load(path: path)
    }

    /// Validates `text` as if it were the file `path` (for tests and `uspd -t` on standard input).
    public static func parse(_ text: String, path: String) throws(ConfigError) -> ServerConfig {
        let reader = try TOMLReader(path: path, text: text)
        let config = read(reader)
        if let e = reader.firstError { throw e }
        return config
    }

    /// Every problem of the file, in file order (empty when it is valid).
    public static func problems(path: String) -> [ConfigError] {
        do {
            let reader = try TOMLReader(path: path)
            _ = read(reader)
            return reader.sortedErrors
        } catch {
            return [error]
        }
    }

    static func read(_ r: TOMLReader) -> ServerConfig {
        var c = ServerConfig()
        let t = r.root
        r.checkKeys(t, at: [], allowed: keys)

        if let listen = r.strings(t, [], "listen") {
            var ok = true
            for (i, entry) in listen.enumerated() {
                if case .failure(let problem) = HostPort.parse(entry, ports: 0...65535) {
                    r.reportAtValue(.invalidValue, ["listen", "[\(i)]"], "listen[\(i)]: \(problem)")
                    ok = false
                }
            }
            if ok { c.listen = listen }
        }
        for (key, keyPath) in [("apps_dir", \ServerConfig.appsDirectory), ("database", \.database), ("host_key", \.hostKey)] {
            if let s = r.string(t, [], key) {
                if s.isEmpty { r.reportAtValue(.invalidValue, [key], "\(key) must not be empty") } else { c[keyPath: keyPath] = s }
            }
        }
        if let s = r.string(t, [], "database_password_file") {
            if s.isEmpty { r.reportAtValue(.invalidValue, ["database_password_file"], "database_password_file must not be empty") } else { c.databasePasswordFile = s }
        }
        if let s = r.string(t, [], "node_name") {
            if let problem = Self.nodeNameProblem(s) { r.reportAtValue(.invalidValue, ["node_name"], "node_name \(problem)") } else { c.nodeName = s }
        }
        if let b = r.bool(t, [], "allow_first_contact") { c.allowFirstContact = b }
        if let b = r.bool(t, [], "tcp_fast_open") { c.tcpFastOpen = b }
        if let d = r.number(t, [], "handshake_timeout", in: 0...600, lowerOpen: true) { c.handshakeTimeout = d }
        (c.silentHold.minimum, c.silentHold.maximum) = bounds(r, t, "silent_hold_min", "silent_hold_max", in: 0.05...86_400,
                                                              defaults: (c.silentHold.minimum, c.silentHold.maximum))
        if let name = r.string(t, [], "silent_hold_distribution") {
            if let d = SilentHoldTime.Distribution(rawValue: name) {
                c.silentHold.distribution = d
            } else {
                r.reportAtValue(.invalidValue, ["silent_hold_distribution"],
                                "silent_hold_distribution must be \"uniform\" or \"log-uniform\", got \"\(name)\"")
            }
        }
        if let i = r.integer(t, [], "max_silent_holds", in: 1...1_048_576) { c.maxSilentHolds = i }
        if let d = r.number(t, [], "idle_timeout", in: 0...604_800) { c.idleTimeout = d }
        if let d = r.number(t, [], "anonymous_session_lifetime", in: 0...86_400) { c.anonymousSessionLifetime = d }
        if let i = r.integer(t, [], "max_connections", in: 1...1_048_576) { c.maxConnections = i }
        if let i = r.integer(t, [], "max_unauthenticated", in: 1...1_048_576) {
            if i > c.maxConnections {
                r.reportAtValue(.outOfRange, ["max_unauthenticated"],
                                "max_unauthenticated must be at most max_connections (\(c.maxConnections)), got \(i)")
            } else {
                c.maxUnauthenticated = i
            }
        } else if c.maxUnauthenticated > c.maxConnections {
            // The default (256) above a small max_connections: follow it down rather than fail.
            c.maxUnauthenticated = c.maxConnections
        }
        if let d = r.number(t, [], "handshake_rate", in: 0...1_000_000, lowerOpen: true) { c.handshakeRate = d }
        if let i = r.integer(t, [], "handshake_burst", in: 1...1_000_000) { c.handshakeBurst = i }
        if let d = r.number(t, [], "known_handshake_rate", in: 0...1_000_000, lowerOpen: true) { c.knownHandshakeRate = d }
        if let i = r.integer(t, [], "known_handshake_burst", in: 1...1_000_000) { c.knownHandshakeBurst = i }
        if let d = r.number(t, [], "known_source_time", in: 0...604_800) { c.knownSourceTime = d }
        if let i = r.integer(t, [], "max_connections_per_source", in: 0...1_048_576) { c.maxConnectionsPerSource = i }
        if let i = r.integer(t, [], "source_prefix_v4", in: 8...32) { c.sourcePrefixV4 = i }
        if let i = r.integer(t, [], "source_prefix_v6", in: 16...128) { c.sourcePrefixV6 = i }
        for (key, keyPath) in [("max_streams_per_minute", \ServerConfig.maxStreamsPerMinute),
                               ("max_streams_per_identity", \.maxStreamsPerIdentity), ("max_streams_per_application", \.maxStreamsPerApplication)] {
            if let i = r.integer(t, [], key, in: 0...1_000_000) { c[keyPath: keyPath] = i }
        }
        if let i = r.integer(t, [], "authorization_token_lifetime", in: 1...31_536_000) { c.authorizationTokenLifetime = i }
        if let i = r.integer(t, [], "application_token_lifetime", in: 1...86_400) { c.applicationTokenLifetime = i }
        (c.loginDelayBase, c.loginDelayMax) = bounds(r, t, "login_delay_base", "login_delay_max", in: 0...60, maxUpTo: 3600,
                                                      defaults: (c.loginDelayBase, c.loginDelayMax))
        (c.loginReplyMin, c.loginReplyMax) = bounds(r, t, "login_reply_min", "login_reply_max", in: 0...10,
                                                    defaults: (c.loginReplyMin, c.loginReplyMax))
        if let d = r.number(t, [], "login_delay_identity_max", in: 0...60) { c.loginDelayIdentityMax = d }
        if let s = r.string(t, [], "login_token_binding") {
            if loginTokenBindings.contains(s) { c.loginTokenBinding = s } else {
                r.reportAtValue(.invalidValue, ["login_token_binding"],
                                "login_token_binding must be one of \(loginTokenBindings.joined(separator: ", ")), got \"\(s)\"")
            }
        }
        if let d = r.number(t, [], "audit_max_age", in: 0...36_500) { c.auditMaxAge = d }
        if let d = r.number(t, [], "audit_max_size", in: 0...1_048_576) { c.auditMaxSize = d }
        if let d = r.number(t, [], "audit_summary_interval", in: 1...86_400) { c.auditSummaryInterval = d }
        if let d = r.number(t, [], "audit_reserve", in: 0...65_536) { c.auditReserve = d }
        if let s = r.string(t, [], "metrics_listen") {
            if s.isEmpty {
                c.metricsListen = ""
            } else if case .failure(let problem) = HostPort.parse(s, ports: 1...65535) {
                r.reportAtValue(.invalidValue, ["metrics_listen"], "metrics_listen: \(problem)")
            } else {
                c.metricsListen = s
            }
        }
        c.brokers = readBrokers(r, t)
        if let s = r.string(t, [], "log_level") {
            if logLevels.contains(s) { c.logLevel = s } else {
                r.reportAtValue(.invalidValue, ["log_level"], "log_level must be one of \(logLevels.joined(separator: ", ")), got \"\(s)\"")
            }
        }
        return c
    }

    /// `[[broker]]` tables; a rule with any problem is reported and left out.
    static func readBrokers(_ r: TOMLReader, _ t: TOMLTable) -> [BrokerRule] {
        guard let value = t["broker"] else { return [] }
        guard let array = value.array else {
            r.wrongType(["broker"], expected: "an array of tables ([[broker]])", got: value)
            return []
        }
        var rules: [BrokerRule] = []
        for i in 0..<array.count {
            let path = ["broker", "[\(i)]"]
            guard let table = array[i].table else {
                r.wrongType(path, expected: "a table", got: array[i])
                continue
            }
            r.checkKeys(table, at: path, allowed: brokerKeys)
            var ok = true
            var rule = BrokerRule(clients: [])
            if let who = r.strings(table, path, "who") {
                for (j, name) in who.enumerated() {
                    if name.hasPrefix("group:") {
                        let group = String(name.dropFirst(6))
                        if group.isEmpty {
                            r.reportAtValue(.invalidValue, path + ["who", "[\(j)]"], "\(TOMLReader.display(path + ["who"]))[\(j)]: \"group:\" names no group")
                            ok = false
                        } else {
                            rule.groups.append(group)
                        }
                    } else if name.isEmpty {
                        r.reportAtValue(.invalidValue, path + ["who", "[\(j)]"], "\(TOMLReader.display(path + ["who"]))[\(j)] is empty")
                        ok = false
                    } else {
                        rule.identities.append(name)
                    }
                }
                if who.isEmpty {
                    r.reportAtValue(.invalidValue, path + ["who"], "\(TOMLReader.display(path + ["who"])) names nobody; list identities or \"group:NAME\"")
                    ok = false
                }
            } else {
                if table["who"] == nil { r.reportAtKey(.invalidValue, path, "[[broker]] #\(i + 1) needs who = [identities or \"group:NAME\"]") }
                ok = false
            }
            if let clients = r.strings(table, path, "clients") {
                for (j, text) in clients.enumerated() {
                    switch IPNetwork.parse(text) {
                    case .success(let n): rule.clients.append(n)
                    case .failure(let problem):
                        r.reportAtValue(.invalidValue, path + ["clients", "[\(j)]"], "\(TOMLReader.display(path + ["clients"]))[\(j)]: \(problem.message)")
                        ok = false
                    }
                }
                if clients.isEmpty {
                    r.reportAtValue(.invalidValue, path + ["clients"], "\(TOMLReader.display(path + ["clients"])) is empty: a broker must be limited to some networks")
                    ok = false
                }
            } else {
                if table["clients"] == nil {
                    r.reportAtKey(.invalidValue, path, "[[broker]] #\(i + 1) needs clients = [networks it may broker for, e.g. \"10.0.0.0/8\"]")
                }
                ok = false
            }
            if let n = r.integer(table, path, "tokens_per_minute", in: 1...10_000) { rule.tokensPerMinute = n } else if table["tokens_per_minute"] != nil { ok = false }
            if let n = r.integer(table, path, "token_lifetime", in: 1...3600) { rule.tokenLifetime = n } else if table["token_lifetime"] != nil { ok = false }
            if ok { rules.append(rule) }
        }
        return rules
    }

    /// A `minimum`/`maximum` pair: each in `range` (the maximum up to `maxUpTo` if given), the
    /// maximum at least the minimum. A maximum left out follows a minimum set above it.
    static func bounds(_ r: TOMLReader, _ t: TOMLTable, _ minKey: String, _ maxKey: String, in range: ClosedRange<Double>,
                       maxUpTo: Double? = nil, defaults: (Double, Double)) -> (Double, Double) {
        var (low, high) = defaults
        if let d = r.number(t, [], minKey, in: range) { low = d }
        if let d = r.number(t, [], maxKey, in: range.lowerBound...(maxUpTo ?? range.upperBound)) {
            if d < low {
                r.reportAtValue(.outOfRange, [maxKey], "\(maxKey) must be at least \(minKey) (\(TOMLReader.format(low))), got \(TOMLReader.format(d))")
            } else {
                high = d
            }
        } else if high < low {
            high = low
        }
        return (low, high)
    }
}

extension ServerConfig {
    /// The effective configuration as `uspd.toml` text, every key written (for `uspd -T`).
    /// Loading it gives back an equal `ServerConfig`.
    public var tomlText: String {
        func q(_ s: String) -> String {
            var out = "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                default:
                    if u.value < 0x20 || u.value == 0x7F { out += String(format: "\\u%04X", u.value) } else { out.unicodeScalars.append(u) }
                }
            }
            return out + "\""
        }
        func n(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(format: "%.1f", d) : "\(d)" }
        return """
            listen = [\(listen.map(q).joined(separator: ", "))]
            apps_dir = \(q(appsDirectory))
            database = \(q(database))\(databasePasswordFile.map { "\ndatabase_password_file = \(q($0))" } ?? "")\(nodeName.map { "\nnode_name = \(q($0))" } ?? "")
            host_key = \(q(hostKey))
            allow_first_contact = \(allowFirstContact)
            tcp_fast_open = \(tcpFastOpen)
            handshake_timeout = \(n(handshakeTimeout))
            silent_hold_min = \(n(silentHold.minimum))
            silent_hold_max = \(n(silentHold.maximum))
            silent_hold_distribution = \(q(silentHold.distribution.rawValue))
            max_silent_holds = \(maxSilentHolds)
            idle_timeout = \(n(idleTimeout))
            anonymous_session_lifetime = \(n(anonymousSessionLifetime))
            max_connections = \(maxConnections)
            max_unauthenticated = \(maxUnauthenticated)
            handshake_rate = \(n(handshakeRate))
            handshake_burst = \(handshakeBurst)
            known_handshake_rate = \(n(knownHandshakeRate))
            known_handshake_burst = \(knownHandshakeBurst)
            known_source_time = \(n(knownSourceTime))
            max_connections_per_source = \(maxConnectionsPerSource)
            source_prefix_v4 = \(sourcePrefixV4)
            source_prefix_v6 = \(sourcePrefixV6)
            max_streams_per_minute = \(maxStreamsPerMinute)
            max_streams_per_identity = \(maxStreamsPerIdentity)
            max_streams_per_application = \(maxStreamsPerApplication)
            authorization_token_lifetime = \(authorizationTokenLifetime)
            application_token_lifetime = \(applicationTokenLifetime)
            login_token_binding = \(q(loginTokenBinding))
            login_delay_base = \(n(loginDelayBase))
            login_delay_max = \(n(loginDelayMax))
            login_delay_identity_max = \(n(loginDelayIdentityMax))
            login_reply_min = \(n(loginReplyMin))
            login_reply_max = \(n(loginReplyMax))
            audit_max_age = \(n(auditMaxAge))
            audit_max_size = \(n(auditMaxSize))
            audit_summary_interval = \(n(auditSummaryInterval))
            audit_reserve = \(n(auditReserve))
            log_level = \(q(logLevel))
            metrics_listen = \(q(metricsListen))

            """ + brokers.map { b in
                """

                [[broker]]
                who = [\(b.who.map(q).joined(separator: ", "))]
                clients = [\(b.clients.map { q($0.description) }.joined(separator: ", "))]
                tokens_per_minute = \(b.tokensPerMinute)
                token_lifetime = \(b.tokenLifetime)

                """
            }.joined()
    }
}
