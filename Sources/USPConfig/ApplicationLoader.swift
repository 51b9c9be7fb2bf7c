import Foundation
import TOMLKit
import USPUnix

/// Loads one `apps.d/*.toml` file (the shape is in `ApplicationDefinition`'s doc comment).
///
/// | key | rule |
/// |---|---|
/// | `name` | required; `^[a-z0-9][a-z0-9._-]{0,62}$` |
/// | `description` | optional string, default `""` |
/// | `visibility` | `"public"`, `"authenticated"` (the default when absent), or a non-empty array of identity names and `"group:NAME"` entries |
/// | `shape` | optional: `"none"` (the default) or `"interactive"` (not with `relay_free`) |
/// | `[expected_request_body]` | optional table: field name → type string (`string`, `integer`, `number`, `boolean`, `object`, `array`, `any`, or `""` for any; a `?` suffix makes the field optional), the vocabulary of USPCore's `RequestBodyValidator` |
/// | `[launch]` | required, exactly one of `exec` (non-empty array of strings, the first one the program; optional `[launch.environment]` table of `NAME = "value"`; optional `stream`, `"stdio"` (the default) or `"fd3"`), `tcp` (`"host:port"`, port 1…65535), `udp` (`"ip:port"`, an address literal) and `unix` (an absolute socket path of at most 107 bytes; optional `relay_free`, a boolean, default false) |
/// | `[launch]` for exec only | `sandbox` (`"none"`, the default, or `"no-network"`); `user` and `group` (a name, resolved now against the system's user database, or a number; `group` defaults to the user's primary group; refused unless uspd runs as root) |
/// | `[limits]` | optional: `max_sessions` 1…1,000,000 (absent: no limit), `token_lifetime` 1…86,400 seconds (absent: the server's `application_token_lifetime`) |
/// | `[rlimits]` | optional, exec only: `max_open_files` 1…1,048,576, `max_memory` (bytes, 1 MiB…2⁶², an integer or a string with a K, M, G or T suffix, powers of 1024), `max_cpu_seconds` 1…31,536,000, `max_processes` 1…4,194,304 |
///
/// Unknown keys at any level are errors. When a file has several problems the earliest one in
/// the file is thrown; `problems(path:)` lists them all.
public enum ApplicationLoader {
    public static let keys = ["name", "description", "visibility", "shape", "expected_request_body", "launch", "limits", "rlimits"]
    public static let launchKeys = ["exec", "tcp", "udp", "unix", "environment", "stream", "sandbox", "user", "group", "relay_free"]
    /// The keys of `[launch]` that only an exec'd command has.
    static let execOnlyKeys = ["environment", "stream", "sandbox", "user", "group"]
    public static let rlimitKeys = ["max_open_files", "max_memory", "max_cpu_seconds", "max_processes"]
    /// The keys of `[launch]` that say how to launch; exactly one must be there.
    static let launchKinds = ["exec", "tcp", "udp", "unix"]
    /// The longest `unix` path: what `sockaddr_un.sun_path` holds besides its NUL.
    public static let maximumSocketPathLength = 107
    public static let limitKeys = ["max_sessions", "token_lifetime"]
    /// Type names of `expected_request_body` values, before an optional `?`.
    public static let fieldTypes = ["string", "integer", "number", "boolean", "object", "array", "any", ""]

    /// Loads the file at `path`. `defaultTokenLifetime` applies when `[limits]` has no `token_lifetime`;
    /// `launch.user` and `launch.group` are resolved against `accounts`.
    public static func load(path: String, defaultTokenLifetime: Int = 60, accounts: SystemAccounts = .system) throws(ConfigError) -> ApplicationDefinition {
        let reader = try TOMLReader(path: path)
        let app = read(reader, defaultTokenLifetime: defaultTokenLifetime, accounts: accounts)
        if let e = reader.firstError { throw e }
        return app!
    }

    /// Validates `text` as if it were the file `path`.
    public static func parse(_ text: String, path: String, defaultTokenLifetime: Int = 60,
                             accounts: SystemAccounts = .system) throws(ConfigError) -> ApplicationDefinition {
        let reader = try TOMLReader(path: path, text: text)
        let app = read(reader, defaultTokenLifetime: defaultTokenLifetime, accounts: accounts)
        if let e = reader.firstError { throw e }
        return app!
    }

    /// Every problem of the file, in file order (empty when it is valid).
    public static func problems(path: String) -> [ConfigError] {
        do {
            let reader = try TOMLReader(path: path)
            _ = read(reader, defaultTokenLifetime: 60, accounts: .system)
            return reader.sortedErrors
        } catch {
            return [error]
        }
    }

    /// Whether `name` is an acceptable application name.
    public static func isValidName(_ name: String) -> Bool {
        let s = Array(name.unicodeScalars)
        guard (1...63).contains(s.count) else { return false }
        func lowerDigit(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || ("0"..."9").contains(c) }
        return lowerDigit(s[0]) && s.dropFirst().allSatisfy { lowerDigit($0) || $0 == "." || $0 == "_" || $0 == "-" }
    }

    /// Whether `type` is an acceptable `expected_request_body` type string.
    public static func isValidFieldType(_ type: String) -> Bool {
        fieldTypes.contains(type.hasSuffix("?") ? String(type.dropLast()) : type)
    }

    /// Nil when the reader recorded a problem that leaves no definition.
    static func read(_ r: TOMLReader, defaultTokenLifetime: Int, accounts: SystemAccounts) -> ApplicationDefinition? {
        let t = r.root
        r.checkKeys(t, at: [], allowed: keys)

        var name: String?
        if let n = r.string(t, [], "name") {
            if isValidName(n) { name = n } else {
                r.reportAtValue(.invalidValue, ["name"],
                    "name \"\(n)\" is not a valid application name: 1 to 63 of a-z, 0-9, \".\", \"_\", \"-\", starting with a letter or digit")
            }
        } else if t["name"] == nil {
            r.report(.missingKey, nil, "missing required key \"name\"")
        }

        let description = r.string(t, [], "description") ?? ""
        let visibility = readVisibility(r, t)
        let body = readRequestBody(r, t)
        let launch = readLaunch(r, t)
        let limits = readLimits(r, t, defaultTokenLifetime: defaultTokenLifetime)
        let isolation = IsolationReader(reader: r, accounts: accounts).read(t, launch: launch)
        let shape = readShape(r, t, launch: launch)

        guard let name, let visibility, let body, let launch, let limits, let isolation, let shape else { return nil }
        return ApplicationDefinition(name: name, description: description, visibility: visibility, expectedRequestBody: body,
                                     launch: launch, limits: limits, isolation: isolation, shape: shape, sourcePath: r.path)
    }

    static func readShape(_ r: TOMLReader, _ t: TOMLTable, launch: ApplicationDefinition.Launch?) -> ApplicationDefinition.Shape? {
        guard t["shape"] != nil else { return ApplicationDefinition.Shape.none }
        guard let s = r.string(t, [], "shape") else { return nil }
        guard let shape = ApplicationDefinition.Shape(rawValue: s) else {
            r.reportAtValue(.invalidValue, ["shape"], "shape must be \"none\" or \"interactive\", got \"\(s)\"")
            return nil
        }
        if shape != .none, case .unix(_, relayFree: true)? = launch {
            r.reportAtValue(.invalidValue, ["shape"], "shape = \"\(s)\" cannot go with relay_free = true: a shaped session stays relayed by uspd")
            return nil
        }
        return shape
    }

    static func readVisibility(_ r: TOMLReader, _ t: TOMLTable) -> ApplicationDefinition.Visibility? {
        guard let v = t["visibility"] else { return .authenticated }
        if let s = v.string {
            switch s {
            case "public": return .public
            case "authenticated": return .authenticated
            default:
                r.reportAtValue(.invalidValue, ["visibility"],
                    "visibility must be \"public\", \"authenticated\" or an array of names and \"group:NAME\", got \"\(s)\"")
                return nil
            }
        }
        guard v.array != nil else {
            r.wrongType(["visibility"], expected: "\"public\", \"authenticated\" or an array of names", got: v)
            return nil
        }
        guard let entries = r.strings(t, [], "visibility") else { return nil }
        guard !entries.isEmpty else {
            r.reportAtValue(.invalidValue, ["visibility"], "visibility is an empty list: nobody would see this application")
            return nil
        }
        var identities = Set<String>(), groups = Set<String>()
        var ok = true
        for (i, entry) in entries.enumerated() {
            let isGroup = entry.hasPrefix("group:")
            let bare = isGroup ? String(entry.dropFirst(6)) : entry
            if bare.isEmpty || bare.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.properties.generalCategory == .control }) {
                r.reportAtValue(.invalidValue, ["visibility", "[\(i)]"],
                                "visibility[\(i)]: \"\(entry)\" is not \(isGroup ? "a group" : "an identity") name")
                ok = false
            } else if isGroup {
                groups.insert(bare)
            } else {
                identities.insert(bare)
            }
        }
        return ok ? .only(identities: identities, groups: groups) : nil
    }

    static func readRequestBody(_ r: TOMLReader, _ t: TOMLTable) -> [String: String]? {
        guard t["expected_request_body"] != nil else { return [:] }
        guard let body = r.table(t, [], "expected_request_body") else { return nil }
        var out: [String: String] = [:]
        var ok = true
        for field in body.keys {
            let path = ["expected_request_body", field]
            if field.isEmpty {
                r.reportAtKey(.invalidValue, path, "expected_request_body: a field name is empty")
                ok = false
                continue
            }
            guard let type = r.string(body, ["expected_request_body"], field) else { ok = false; continue }
            if isValidFieldType(type) { out[field] = type } else {
                r.reportAtValue(.invalidValue, path,
                    "\(TOMLReader.display(path)): unknown type \"\(type)\"; use string, integer, number, boolean, object, array, any or \"\", optionally followed by \"?\"")
                ok = false
            }
        }
        return ok ? out : nil
    }

    static func readLaunch(_ r: TOMLReader, _ t: TOMLTable) -> ApplicationDefinition.Launch? {
        let ways = "exec = [\"/path/to/program\", …], tcp = \"host:port\", udp = \"ip:port\" or unix = \"/path/to/socket\""
        guard t["launch"] != nil else {
            r.report(.missingKey, nil, "missing required table [launch] with \(ways)")
            return nil
        }
        guard let launch = r.table(t, [], "launch") else { return nil }
        r.checkKeys(launch, at: ["launch"], allowed: launchKeys)
        // The kinds present, in file order.
        let kinds = launchKinds.filter { launch[$0] != nil }
            .map { ($0, r.positions.key(["launch", $0])) }
            .sorted { a, b in (a.1?.line ?? 0, a.1?.column ?? 0) < (b.1?.line ?? 0, b.1?.column ?? 0) }
        guard let kind = kinds.first?.0 else {
            r.reportAtKey(.missingKey, ["launch"], "[launch] needs \(ways)")
            return nil
        }
        if kinds.count > 1 {
            r.report(.invalidValue, kinds[1].1, "[launch] has both \"\(kind)\" and \"\(kinds[1].0)\"; an application is launched one way")
            return nil
        }
        for key in execOnlyKeys where kind != "exec" && launch[key] != nil {
            r.reportAtKey(.invalidValue, ["launch", key], "launch.\(key) applies to exec, not to \(kind)")
        }
        if kind != "unix", launch["relay_free"] != nil {
            r.reportAtKey(.invalidValue, ["launch", "relay_free"], "launch.relay_free applies to unix, not to \(kind)")
        }
        switch kind {
        case "tcp":
            guard let text = r.string(launch, ["launch"], "tcp") else { return nil }
            switch HostPort.parse(text, ports: 1...65535) {
            case .success(let hp): return .tcp(host: hp.host, port: hp.port)
            case .failure(let problem):
                r.reportAtValue(.invalidValue, ["launch", "tcp"], "launch.tcp: \(problem)")
                return nil
            }
        case "udp":
            guard let text = r.string(launch, ["launch"], "udp") else { return nil }
            switch HostPort.parse(text, ports: 1...65535) {
            case .success(let hp) where isIPAddress(hp.host):
                return .udp(host: hp.host, port: hp.port)
            case .success(let hp):
                r.reportAtValue(.invalidValue, ["launch", "udp"], "launch.udp: \"\(hp.host)\" must be an IP address: a UDP target is not looked up by name")
                return nil
            case .failure(let problem):
                r.reportAtValue(.invalidValue, ["launch", "udp"], "launch.udp: \(problem)")
                return nil
            }
        case "unix":
            guard let path = r.string(launch, ["launch"], "unix") else { return nil }
            guard path.hasPrefix("/"), path.utf8.count <= maximumSocketPathLength, !path.utf8.contains(0) else {
                r.reportAtValue(.invalidValue, ["launch", "unix"],
                                "launch.unix: \"\(path)\" must be an absolute socket path of at most \(maximumSocketPathLength) bytes")
                return nil
            }
            var relayFree = false
            if launch["relay_free"] != nil {
                guard let value = r.bool(launch, ["launch"], "relay_free") else { return nil }
                relayFree = value
            }
            return .unix(path: path, relayFree: relayFree)
        default:
            return readExec(r, launch)
        }
    }

    /// Whether `host` is an IPv4 or IPv6 address literal.
    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    static func readExec(_ r: TOMLReader, _ launch: TOMLTable) -> ApplicationDefinition.Launch? {
        guard let command = r.strings(launch, ["launch"], "exec") else { return nil }
        guard let program = command.first, !program.isEmpty else {
            r.reportAtValue(.invalidValue, ["launch", "exec"],
                            command.isEmpty ? "launch.exec is empty: it needs at least the program" : "launch.exec[0], the program, is empty")
            return nil
        }
        var stream = ApplicationDefinition.ExecStream.stdio
        if launch["stream"] != nil {
            guard let text = r.string(launch, ["launch"], "stream") else { return nil }
            guard let value = ApplicationDefinition.ExecStream(rawValue: text) else {
                r.reportAtValue(.invalidValue, ["launch", "stream"], "launch.stream must be \"stdio\" or \"fd3\", got \"\(text)\"")
                return nil
            }
            stream = value
        }
        var environment: [String: String] = [:]
        if launch["environment"] != nil {
            guard let env = r.table(launch, ["launch"], "environment") else { return nil }
            var ok = true
            for key in env.keys {
                let path = ["launch", "environment", key]
                guard isEnvironmentName(key) else {
                    r.reportAtKey(.invalidValue, path, "launch.environment: \"\(key)\" is not a variable name (letters, digits and _, not starting with a digit)")
                    ok = false
                    continue
                }
                if let value = r.string(env, ["launch", "environment"], key) { environment[key] = value } else { ok = false }
            }
            if !ok { return nil }
        }
        return .exec(command: command, environment: environment, stream: stream)
    }

    static func isEnvironmentName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }

    static func readLimits(_ r: TOMLReader, _ t: TOMLTable, defaultTokenLifetime: Int) -> ApplicationDefinition.Limits? {
        var limits = ApplicationDefinition.Limits(maxSessions: nil, tokenLifetime: defaultTokenLifetime)
        guard t["limits"] != nil else { return limits }
        guard let table = r.table(t, [], "limits") else { return nil }
        r.checkKeys(table, at: ["limits"], allowed: limitKeys)
        var ok = true
        if table["max_sessions"] != nil {
            if let n = r.integer(table, ["limits"], "max_sessions", in: 1...1_000_000) { limits.maxSessions = n } else { ok = false }
        }
        if table["token_lifetime"] != nil {
            if let n = r.integer(table, ["limits"], "token_lifetime", in: 1...86_400) { limits.tokenLifetime = n } else { ok = false }
        }
        return ok ? limits : nil
    }
}
