import FoundationEssentials
import Glibc
import USPCore
import USPErrors

/// The client's configuration file, `HOME/config`, in the syntax of OpenSSH's ssh_config:
///
///     # comments, blank lines
///     Port 7300                       # before any Host line: for every server
///     Host prod prod-*  !prod-old     # patterns: * and ?, ! excludes
///         URI usp://KEY@10.0.0.5:7300
///         User alice
///         Application ssh
///     Host *.example.org
///         ServerKeyChecking=yes       # Keyword value, or Keyword=value
///         SSHKeyFile "~/my keys/id_ed25519"
///
/// Keywords are case-insensitive. For one server, the first value obtained for a keyword wins,
/// as in ssh: the command line first (`-o`, flags, the URI argument), then the file from top to
/// bottom, only the blocks whose Host patterns match the name typed. Every line is checked,
/// whether its block matches or not: an unknown keyword or a bad value is an error naming
/// `file:line`. This type is the pure parser and resolver; `ClientConfigFile` reads the file.
public struct ClientConfig: Sendable {
    /// The keywords `usp` understands; each maps onto an option the command line has.
    public enum Keyword: String, CaseIterable, Sendable, Comparable {
        case host = "Host"
        case uri = "URI"
        case hostName = "HostName"
        case port = "Port"
        case serverKey = "ServerKey"
        case user = "User"
        case application = "Application"
        case sshKeyFile = "SSHKeyFile"
        case serverKeyChecking = "ServerKeyChecking"
        case dns = "DNS"
        case requireDNSSEC = "RequireDNSSEC"
        case dnsServer = "DNSServer"
        case anonymous = "Anonymous"
        case useAgent = "UseAgent"
        case fastOpen = "FastOpen"
        case ignoreUnknown = "IgnoreUnknown"

        /// Case-insensitive, as ssh reads keywords.
        public init?(name: String) {
            guard let k = Self.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else { return nil }
            self = k
        }

        /// What a value must be, for error messages.
        public var expected: String {
            switch self {
            case .host: "one or more host patterns (* and ? wildcards, !pattern excludes)"
            case .uri: "a full server URI, usp://[KEY@]host[:port]"
            case .hostName: "a host name or IP address (%h stands for the name typed)"
            case .port: "a port number from 1 to 65535"
            case .serverKey: "the server's X25519 public key, base64url of 32 bytes (as uspd key prints it)"
            case .user: "a user name"
            case .application: "an application name as on the menu (a-z, 0-9, '.', '_', '-'; at most 63 characters)"
            case .sshKeyFile: "the path of an OpenSSH Ed25519 private key, or none"
            case .serverKeyChecking: "yes (only servers in known_servers), accept-new (trust on first use) or no"
            case .dns, .requireDNSSEC, .anonymous, .useAgent, .fastOpen: "yes or no"
            case .dnsServer: "an IPv4 address with an optional port, as 127.0.0.1:5353"
            case .ignoreUnknown: "a comma-separated list of keyword patterns"
            }
        }

        public static func < (a: Self, b: Self) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    /// ssh keywords `usp` knows but does not take, with why: an error that says more than
    /// "unknown keyword". `ignorable`: IgnoreUnknown may skip it (Match and Include change how
    /// the lines after them are read, so they never are).
    static let unsupported: [String: (why: String, ignorable: Bool)] = [
        "identityfile": ("usp has one identity key per client home (HOME/identity); use --home DIR or USP_HOME for another identity, or SSHKeyFile to log in with an SSH key", true),
        "match": ("Match blocks are not supported; use Host patterns", false),
        "include": ("Include is not supported; keep the configuration in one file", false),
    ]

    /// Where a value came from: what `usp config show` prints beside it.
    public enum Origin: Hashable, Sendable, CustomStringConvertible {
        case file(path: String, line: Int)
        /// An option or argument on the command line, as typed (`-o Port=7400`, `--no-dns`).
        case commandLine(String)
        case defaultValue

        public var description: String {
            switch self {
            case .file(let path, let line): "\(path):\(line)"
            case .commandLine(let what): "command line (\(what))"
            case .defaultValue: "default"
            }
        }

        /// The prefix of an error about a value from here: `path:line` or the option as typed.
        var prefix: String {
            switch self {
            case .file(let path, let line): "\(path):\(line)"
            case .commandLine(let what): what
            case .defaultValue: "default"
            }
        }
    }

    /// A checked value.
    public enum Value: Hashable, Sendable {
        case uri(ServerURI)
        case text(String)
        case port(UInt16)
        case key([UInt8])
        case flag(Bool)
        case checking(KnownServers.Mode)
        case resolver(host: String, port: Int)
        /// `SSHKeyFile none`: no SSH key, even if a later line names one.
        case none
    }

    public struct Setting: Hashable, Sendable {
        public var keyword: Keyword
        public var value: Value
        public var origin: Origin

        public init(_ keyword: Keyword, _ value: Value, origin: Origin) {
            self.keyword = keyword
            self.value = value
            self.origin = origin
        }
    }

    public struct HostPattern: Hashable, Sendable {
        public var pattern: String
        public var negated: Bool
    }

    /// A `Host` line and the settings under it. The first block (line 0, no patterns) holds the
    /// lines before any `Host` line, which apply to every server.
    public struct Block: Sendable {
        public var patterns: [HostPattern]
        public var line: Int
        public var settings: [Setting]

        /// ssh's rule: some pattern matches and no negated one does.
        public func matches(_ alias: String) -> Bool {
            if line == 0 { return true }
            let name = alias.lowercased()
            var matched = false
            for p in patterns where KnownServers.glob(p.pattern, name) {
                if p.negated { return false }
                matched = true
            }
            return matched
        }
    }

    /// The file's path, for messages (`-F none` or no file: the empty configuration).
    public let path: String
    public private(set) var blocks: [Block]

    /// The empty configuration: every value from the command line or the defaults.
    public init(path: String = "none") {
        self.path = path
        blocks = [Block(patterns: [], line: 0, settings: [])]
    }

    /// Parses the whole file; the first problem is thrown as `path:line: …`.
    public init(parsing text: String, path: String) throws(USPClientError) {
        self.init(path: path)
        var ignored: [String] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let origin = Origin.file(path: path, line: n + 1)
            let tokens: (keyword: String, arguments: [String])?
            do throws(LineError) {
                tokens = try Self.tokens(line)
            } catch {
                throw USPClientError(.invalidConfig, "\(origin.prefix): \(error.reason)")
            }
            guard let (name, arguments) = tokens else { continue }
            guard let keyword = Keyword(name: name) else {
                let lower = name.lowercased()
                if ignored.contains(where: { KnownServers.glob($0, lower) }), Self.unsupported[lower]?.ignorable ?? true { continue }
                throw Self.unknownKeyword(name, at: origin)
            }
            switch keyword {
            case .host:
                guard !arguments.isEmpty else { throw Self.badValue(keyword, nil, at: origin, "needs at least one pattern") }
                var patterns: [HostPattern] = []
                for a in arguments {
                    let negated = a.hasPrefix("!")
                    let pattern = String(negated ? a.dropFirst() : Substring(a)).lowercased()
                    guard !pattern.isEmpty else { throw Self.badValue(keyword, a, at: origin, "a pattern after ! is missing") }
                    patterns.append(HostPattern(pattern: pattern, negated: negated))
                }
                blocks.append(Block(patterns: patterns, line: n + 1, settings: []))
            case .ignoreUnknown:
                guard !arguments.isEmpty else { throw Self.badValue(keyword, nil, at: origin, "needs a value: \(keyword.expected)") }
                ignored += arguments.joined(separator: ",").split(separator: ",").map { $0.trimming { $0 == " " || $0 == "\t" }.lowercased() }
                    .filter { !$0.isEmpty }
            default:
                blocks[blocks.count - 1].settings.append(try Self.setting(keyword, arguments, origin: origin))
            }
        }
    }

    /// One `Keyword=Value` (or `Keyword Value`) from the command line, as `ssh -o` takes it.
    public static func option(_ text: String, origin: Origin? = nil) throws(USPClientError) -> Setting {
        let origin = origin ?? .commandLine("-o \(text)")
        let tokens: (keyword: String, arguments: [String])?
        do throws(LineError) {
            tokens = try Self.tokens(Substring(text))
        } catch {
            throw USPClientError(.invalidArgument, "\(origin.prefix): \(error.reason)")
        }
        guard let (name, arguments) = tokens else {
            throw USPClientError(.invalidArgument, "\(origin.prefix): expected Keyword=Value, as -o Port=7400")
        }
        guard let keyword = Keyword(name: name), keyword != .host, keyword != .ignoreUnknown else {
            var e = unknownKeyword(name, at: origin)
            if Keyword(name: name) != nil { e.message = "\(origin.prefix): \(name) cannot be given with -o" }
            e.code = .invalidArgument
            throw e
        }
        do throws(USPClientError) {
            return try setting(keyword, arguments, origin: origin)
        } catch {
            throw USPClientError(.invalidArgument, error.message)
        }
    }

    /// A command-line flag's value as a setting (`--server-key-checking strict`); a bad value is
    /// an `invalidArgument` naming the flag.
    public static func commandLine(_ keyword: Keyword, _ text: String, flag: String) throws(USPClientError) -> Setting {
        do throws(USPClientError) {
            return try setting(keyword, [text], origin: .commandLine("\(flag) \(text)"))
        } catch {
            throw USPClientError(.invalidArgument, error.message)
        }
    }

    // MARK: - Resolving

    /// The settings for the server typed as `alias`: `commandLine` first, then the file's
    /// matching blocks, first value wins.
    public func settings(for alias: String, commandLine: [Setting] = []) -> ClientSettings {
        var s = ClientSettings(alias: alias.lowercased())
        for setting in commandLine { s.obtain(setting) }
        for block in blocks where block.matches(alias) {
            for setting in block.settings { s.obtain(setting) }
        }
        return s
    }

    /// What `typed` (an alias, `host[:port]` or a `usp://` URI) resolves to. Host patterns match
    /// the host as typed; a port or key in `typed` comes before everything else, then
    /// `commandLine`, then the file.
    public func resolve(_ typed: String, commandLine: [Setting] = []) throws(USPClientError) -> ResolvedTarget {
        let given = try ServerURI(parsingLoosely: typed)
        let origin = Origin.commandLine(typed)
        var first: [Setting] = []
        if given.portGiven { first.append(Setting(.port, .port(given.port), origin: origin)) }
        if let key = given.serverKey { first.append(Setting(.serverKey, .key(key), origin: origin)) }
        let settings = self.settings(for: given.host, commandLine: first + commandLine)
        let host = settings.hostName ?? given.host
        var text = "usp://" + (settings.serverKey.map { Base64URL.encode($0) + "@" } ?? "")
        text += host.contains(":") ? "[\(host)]" : host
        if let port = settings.port { text += ":\(port)" }
        let server: ServerURI
        do throws(USPClientError) {
            server = try ServerURI(parsing: text)
        } catch {
            let from = settings.origin(.hostName).map { " (HostName from \($0))" } ?? ""
            throw USPClientError(.invalidConfig, "\(typed) resolves to \(text), which is not a server URI\(from): \(error.message)")
        }
        return ResolvedTarget(typed: typed, server: server, settings: settings)
    }

    /// The literal names of Host lines (no wildcard, not negated) that resolve to `hostPort`:
    /// the aliases `usp logins list` shows beside a saved login.
    public func aliases(resolvingTo hostPort: String) -> [String] {
        var out: [String] = []
        for block in blocks {
            for p in block.patterns where !p.negated && !p.pattern.contains(where: { $0 == "*" || $0 == "?" }) && !out.contains(p.pattern) {
                if let r = try? resolve(p.pattern), r.server.hostPort == hostPort { out.append(p.pattern) }
            }
        }
        return out
    }

    // MARK: - Values

    static func setting(_ keyword: Keyword, _ arguments: [String], origin: Origin) throws(USPClientError) -> Setting {
        guard arguments.count == 1, let text = arguments.first else {
            let why = arguments.isEmpty ? "needs a value: \(keyword.expected)" : "takes one value (quote it if it has spaces)"
            throw badValue(keyword, nil, at: origin, why)
        }
        func bad() -> USPClientError { badValue(keyword, text, at: origin, nil) }
        let value: Value
        switch keyword {
        case .uri:
            guard text.contains("://") else { throw bad() }
            do throws(USPClientError) {
                value = .uri(try ServerURI(parsing: text))
            } catch {
                throw USPClientError(.invalidConfig, "\(origin.prefix): URI: \(error.message)")
            }
        case .hostName:
            guard hostNameIsValid(text) else { throw bad() }
            value = .text(text)
        case .port:
            guard let p = UInt16(text), p > 0 else { throw bad() }
            value = .port(p)
        case .serverKey:
            guard let key = KeyText.firstKey(text), key.count == 32 else { throw bad() }
            value = .key(key)
        case .user:
            guard !text.isEmpty else { throw bad() }
            value = .text(text)
        case .application:
            guard applicationNameIsValid(text) else { throw bad() }
            value = .text(text)
        case .sshKeyFile:
            guard !text.isEmpty else { throw bad() }
            value = text.lowercased() == "none" ? .none : .text(text)
        case .serverKeyChecking:
            // ask (ssh's default) would need a prompt; usp has none.
            guard let mode = KnownServers.Mode(text: text) else { throw bad() }
            value = .checking(mode)
        case .dns, .requireDNSSEC, .anonymous, .useAgent, .fastOpen:
            switch text.lowercased() {
            case "yes", "true": value = .flag(true)
            case "no", "false": value = .flag(false)
            default: throw bad()
            }
        case .dnsServer:
            guard let (host, port) = DNSKeyOptions.server(parsing: text) else { throw bad() }
            value = .resolver(host: host, port: port)
        case .host, .ignoreUnknown:
            throw badValue(keyword, text, at: origin, "\(keyword.rawValue) is not a setting")
        }
        return Setting(keyword, value, origin: origin)
    }

    /// A host name or address, with `%h` (the name typed) and `%%`.
    static func hostNameIsValid(_ text: String) -> Bool {
        var probe = ""
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            i = text.index(after: i)
            guard c == "%" else { probe.append(c); continue }
            guard i < text.endIndex, text[i] == "h" || text[i] == "%" else { return false }
            if text[i] == "h" { probe += "h" }
            i = text.index(after: i)
        }
        if probe.hasPrefix("["), probe.hasSuffix("]") { probe = String(probe.dropFirst().dropLast()) }
        if probe.contains(":") {
            var address = in6_addr()
            return inet_pton(AF_INET6, String(probe.prefix { $0 != "%" }), &address) == 1
        }
        guard let u = try? ServerURI(parsing: "usp://" + probe) else { return false }
        return !u.portGiven
    }

    static func applicationNameIsValid(_ text: String) -> Bool {
        guard let first = text.first, (1...63).contains(text.count), first.isASCII, first.isLowercase || first.isNumber else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
    }

    static func unknownKeyword(_ name: String, at origin: Origin) -> USPClientError {
        if let (why, _) = unsupported[name.lowercased()] {
            return USPClientError(.invalidConfig, "\(origin.prefix): \(name): \(why)")
        }
        var message = "\(origin.prefix): unknown keyword \"\(name)\""
        let names = Keyword.allCases.map(\.rawValue)
        if let near = nearestName(to: name, among: names, maxDistance: 3, ignoringCase: true) {
            message += " (did you mean \"\(near)\"?)"
        } else {
            message += " (known: \(names.joined(separator: ", ")); IgnoreUnknown skips others)"
        }
        return USPClientError(.invalidConfig, message)
    }

    /// `path:line: Port "x": expected …`, or without a value `path:line: Port needs a value: …`.
    static func badValue(_ keyword: Keyword, _ text: String?, at origin: Origin, _ why: String?) -> USPClientError {
        guard let text else { return USPClientError(.invalidConfig, "\(origin.prefix): \(keyword.rawValue) \(why ?? "needs a value")") }
        return USPClientError(.invalidConfig, "\(origin.prefix): \(keyword.rawValue) \"\(text)\": \(why ?? "expected \(keyword.expected)")")
    }

    // MARK: - Lines

    struct LineError: Error {
        var reason: String
    }

    /// `Keyword value…` or `Keyword=value…`, as ssh splits a line: arguments separated by
    /// blanks, `"…"` or `'…'` quoting (with `\"`, `\'` and `\\` inside), a backslash escaping a
    /// blank or quote outside them, and an unquoted `#` starting a comment. nil: a blank or
    /// comment line.
    static func tokens(_ line: Substring) throws(LineError) -> (keyword: String, arguments: [String])? {
        let chars = Array(line)
        var i = 0
        func isBlank(_ c: Character) -> Bool { c == " " || c == "\t" || c == "\r" }
        while i < chars.count, isBlank(chars[i]) { i += 1 }
        guard i < chars.count, chars[i] != "#" else { return nil }
        var keyword = ""
        while i < chars.count, !isBlank(chars[i]), chars[i] != "=" {
            keyword.append(chars[i])
            i += 1
        }
        guard !keyword.isEmpty else { throw LineError(reason: "expected Keyword value or Keyword=value") }
        while i < chars.count, isBlank(chars[i]) { i += 1 }
        if i < chars.count, chars[i] == "=" { i += 1 }
        var arguments: [String] = []
        while true {
            while i < chars.count, isBlank(chars[i]) { i += 1 }
            guard i < chars.count, chars[i] != "#" else { break }
            var token = ""
            var quote: Character?
            while i < chars.count {
                let c = chars[i]
                if let q = quote {
                    if c == "\\", i + 1 < chars.count, chars[i + 1] == q || chars[i + 1] == "\\" {
                        token.append(chars[i + 1])
                        i += 2
                        continue
                    }
                    if c == q { quote = nil } else { token.append(c) }
                } else if isBlank(c) {
                    break
                } else if c == "\"" || c == "'" {
                    quote = c
                } else if c == "\\", i + 1 < chars.count, isBlank(chars[i + 1]) || "\"'\\#".contains(chars[i + 1]) {
                    token.append(chars[i + 1])
                    i += 1
                } else {
                    token.append(c)
                }
                i += 1
            }
            if let quote { throw LineError(reason: "unterminated \(quote == "\"" ? "double" : "single") quote") }
            arguments.append(token)
        }
        return (keyword, arguments)
    }
}

/// The values obtained for one server, first one wins, each with where it came from.
public struct ClientSettings: Sendable {
    /// The host as typed (lowercased): what Host patterns matched.
    public let alias: String
    public private(set) var obtained: [ClientConfig.Keyword: ClientConfig.Setting] = [:]

    init(alias: String) { self.alias = alias }

    /// Takes `setting` unless its keyword already has a value. `URI` stands for the HostName,
    /// Port and ServerKey it names, each obtained on its own.
    mutating func obtain(_ setting: ClientConfig.Setting) {
        if case .uri(let u) = setting.value {
            obtain(.init(.hostName, .text(u.host), origin: setting.origin))
            if u.portGiven { obtain(.init(.port, .port(u.port), origin: setting.origin)) }
            if let key = u.serverKey { obtain(.init(.serverKey, .key(key), origin: setting.origin)) }
            return
        }
        if obtained[setting.keyword] == nil { obtained[setting.keyword] = setting }
    }

    public func origin(_ keyword: ClientConfig.Keyword) -> ClientConfig.Origin? { obtained[keyword]?.origin }

    func text(_ k: ClientConfig.Keyword) -> String? {
        if case .text(let t)? = obtained[k]?.value { return t }
        return nil
    }

    func flag(_ k: ClientConfig.Keyword) -> Bool? {
        if case .flag(let b)? = obtained[k]?.value { return b }
        return nil
    }

    /// HostName with `%h` replaced by the alias and `%%` by `%`, without surrounding brackets.
    public var hostName: String? {
        guard let t = text(.hostName) else { return nil }
        var out = ""
        var i = t.startIndex
        while i < t.endIndex {
            let c = t[i]
            let next = t.index(after: i)
            if c == "%", next < t.endIndex, t[next] == "h" || t[next] == "%" {
                out += t[next] == "h" ? alias : "%"
                i = t.index(after: next)
            } else {
                out.append(c)
                i = next
            }
        }
        return String(out.trimming { $0 == "[" || $0 == "]" })
    }

    public var port: UInt16? {
        if case .port(let p)? = obtained[.port]?.value { return p }
        return nil
    }

    public var serverKey: [UInt8]? {
        if case .key(let k)? = obtained[.serverKey]?.value { return k }
        return nil
    }

    public var user: String? { text(.user) }
    public var application: String? { text(.application) }
    /// The SSH key file as written (`~` not expanded); nil also for `none`.
    public var sshKeyFile: String? { text(.sshKeyFile) }
    public var anonymous: Bool { flag(.anonymous) ?? false }
    public var useAgent: Bool { flag(.useAgent) ?? true }
    /// TCP Fast Open: the first USP message rides in the SYN once the kernel holds a cookie.
    public var fastOpen: Bool { flag(.fastOpen) ?? false }

    public var serverKeyChecking: KnownServers.Mode {
        if case .checking(let m)? = obtained[.serverKeyChecking]?.value { return m }
        return .acceptNew
    }

    public var dnsServer: (host: String, port: Int)? {
        if case .resolver(let h, let p)? = obtained[.dnsServer]?.value { return (h, p) }
        return nil
    }

    /// Sets the connection options these settings decide (the rest of `options` is left).
    public func apply(to options: inout USPConnectionOptions) throws(USPClientError) {
        options.serverKeyChecking = serverKeyChecking
        options.anonymous = anonymous
        options.fastOpen = fastOpen
        options.dns.enabled = flag(.dns) ?? true
        options.dns.requireDNSSEC = flag(.requireDNSSEC) ?? false
        options.dns.server = dnsServer
        if !options.dns.enabled, options.dns.requireDNSSEC {
            throw USPClientError(.invalidArgument, "DNS no (\(origin(.dns)!.prefix)) and RequireDNSSEC yes (\(origin(.requireDNSSEC)!.prefix)) contradict each other")
        }
    }

    /// One row of `usp config show`: a keyword, its value as the file would spell it (nil:
    /// none), and where it came from.
    public struct Row: Sendable {
        public var keyword: ClientConfig.Keyword
        public var value: String?
        public var origin: String
    }

    /// Every setting with its value, the defaults included.
    public var rows: [Row] {
        ClientConfig.Keyword.allCases.filter { $0 != .host && $0 != .uri && $0 != .ignoreUnknown }.map { k in
            let origin = self.origin(k)?.description ?? (k == .hostName ? "the name typed" : "default")
            return Row(keyword: k, value: Self.display(k, obtained[k]?.value, settings: self), origin: origin)
        }
    }

    static func display(_ k: ClientConfig.Keyword, _ value: ClientConfig.Value?, settings s: ClientSettings) -> String? {
        switch value {
        case .uri(let u)?: return u.description
        case .text?: return k == .hostName ? s.hostName : s.text(k)
        case .port(let p)?: return "\(p)"
        case .key(let key)?: return Base64URL.encode(key)
        case .flag(let b)?: return b ? "yes" : "no"
        case .checking(let m)?: return m == .strict ? "yes" : m.rawValue
        case .resolver(let h, let p)?: return "\(h):\(p)"
        case .none?: return "none"
        case nil:
            switch k {
            case .hostName: return s.alias
            case .port: return "\(ServerURI.defaultPort)"
            case .serverKeyChecking: return "accept-new"
            case .dns, .useAgent: return "yes"
            case .requireDNSSEC, .anonymous, .fastOpen: return "no"
            default: return nil
            }
        }
    }
}

/// A server argument resolved through the configuration.
public struct ResolvedTarget: Sendable {
    /// What was typed: an alias, `host[:port]` or a URI.
    public let typed: String
    public let server: ServerURI
    public let settings: ClientSettings
}
