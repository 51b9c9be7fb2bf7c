import Foundation
import Testing
import USPTestSupport
@testable import USPConfig

@Suite("uspd.toml")
struct ServerConfigLoaderTests {
    let p = "/etc/uspd/uspd.toml"

    @Test func emptyFileGivesDefaults() throws {
        #expect(try ServerConfigLoader.parse("", path: p) == ServerConfig())
        #expect(try ServerConfigLoader.parse("# only a comment\n\n", path: p) == ServerConfig())
    }

    @Test func everyField() throws {
        let c = try ServerConfigLoader.parse("""
            listen = ["0.0.0.0:7301", "[::]:7302", "localhost:0"]
            apps_dir = "/etc/uspd/apps.d"
            database = "db/usp.sqlite"
            node_name = "eu-west.2"
            host_key = "keys/host"
            allow_first_contact = false
            handshake_timeout = 2.5
            silent_hold_min = 0.5
            silent_hold_max = 300
            silent_hold_distribution = "uniform"
            max_silent_holds = 64
            max_connections = 100
            max_unauthenticated = 10
            handshake_rate = 7
            handshake_burst = 3
            authorization_token_lifetime = 3600
            application_token_lifetime = 30
            login_token_binding = "prefix"
            login_delay_base = 0.5
            login_delay_max = 4
            log_level = "debug"
            """, path: p)
        var expected = ServerConfig()
        expected.listen = ["0.0.0.0:7301", "[::]:7302", "localhost:0"]
        expected.appsDirectory = "/etc/uspd/apps.d"
        expected.database = "db/usp.sqlite"
        expected.nodeName = "eu-west.2"
        expected.hostKey = "keys/host"
        expected.allowFirstContact = false
        expected.handshakeTimeout = 2.5
        expected.silentHold = SilentHoldTime(minimum: 0.5, maximum: 300, distribution: .uniform)
        expected.maxSilentHolds = 64
        expected.maxConnections = 100
        expected.maxUnauthenticated = 10
        expected.handshakeRate = 7
        expected.handshakeBurst = 3
        expected.authorizationTokenLifetime = 3600
        expected.applicationTokenLifetime = 30
        expected.loginTokenBinding = "prefix"
        expected.loginDelayBase = 0.5
        expected.loginDelayMax = 4
        expected.logLevel = "debug"
        #expect(c == expected)
        #expect(try ServerConfigLoader.parse(c.tomlText, path: p) == c)  // -T output loads back
        #expect(try ServerConfigLoader.parse(ServerConfig().tomlText, path: p) == ServerConfig())
    }

    @Test func fileOnDisk() throws {
        let dir = TempDirectory()
        let path = dir.write("uspd.toml", "max_connections = 9\n")
        #expect(try ServerConfigLoader.load(path: path).maxConnections == 9)
        #expect(try ServerConfigLoader.loadIfPresent(path: dir.file("absent.toml")) == ServerConfig())
        let missing = configError { try ServerConfigLoader.load(path: dir.file("absent.toml")) }
        #expect(missing?.description == "\(dir.file("absent.toml")): cannot open: No such file or directory")
        #expect(missing?.code == .unreadable)
        let isDir = configError { try ServerConfigLoader.load(path: dir.path) }
        #expect(isDir?.description == "\(dir.path): not a regular file")
        // loadIfPresent does not hide a file that exists but is bad.
        dir.write("bad.toml", "max_connections = 0\n")
        #expect(configError { try ServerConfigLoader.loadIfPresent(path: dir.file("bad.toml")) }?.code == .outOfRange)
    }

    @Test(arguments: [
        // (text, expected description)
        ("listen = [\"127.0.0.1:7300\"]\n  handshake_timout = 5\n",
         "/etc/uspd/uspd.toml:2:3: unknown key \"handshake_timout\" (did you mean \"handshake_timeout\"?)"),
        ("colour = \"blue\"\n", "/etc/uspd/uspd.toml:1:1: unknown key \"colour\""),
        ("max_connections = 5\n\n[server]\nlisten = []\n", "/etc/uspd/uspd.toml:3:1: unknown key \"server\""),
        ("max_connections = \"many\"\n", "/etc/uspd/uspd.toml:1:19: max_connections must be an integer, not a string"),
        ("max_connections = 10.5\n", "/etc/uspd/uspd.toml:1:19: max_connections must be an integer, not a float"),
        ("max_connections = 0\n", "/etc/uspd/uspd.toml:1:19: max_connections must be 1…1048576, got 0"),
        ("max_connections = 2000000\n", "/etc/uspd/uspd.toml:1:19: max_connections must be 1…1048576, got 2000000"),
        ("allow_first_contact = \"yes\"\n", "/etc/uspd/uspd.toml:1:23: allow_first_contact must be true or false, not a string"),
        ("handshake_timeout = 0\n", "/etc/uspd/uspd.toml:1:21: handshake_timeout must be more than 0 and at most 600, got 0"),
        ("handshake_timeout = 601\n", "/etc/uspd/uspd.toml:1:21: handshake_timeout must be more than 0 and at most 600, got 601"),
        ("handshake_timeout = nan\n", "/etc/uspd/uspd.toml:1:21: handshake_timeout must be more than 0 and at most 600, got nan"),
        ("handshake_timeout = true\n", "/etc/uspd/uspd.toml:1:21: handshake_timeout must be a number, not a boolean"),
        ("silent_hold_min = 0\n", "/etc/uspd/uspd.toml:1:19: silent_hold_min must be 0.05…86400, got 0"),
        ("silent_hold_min = 20\nsilent_hold_max = 10\n", "/etc/uspd/uspd.toml:2:19: silent_hold_max must be at least silent_hold_min (20), got 10"),
        ("silent_hold_distribution = \"normal\"\n",
         "/etc/uspd/uspd.toml:1:28: silent_hold_distribution must be \"uniform\" or \"log-uniform\", got \"normal\""),
        ("max_silent_holds = 0\n", "/etc/uspd/uspd.toml:1:20: max_silent_holds must be 1…1048576, got 0"),
        ("handshake_rate = -1\n", "/etc/uspd/uspd.toml:1:18: handshake_rate must be more than 0 and at most 1000000, got -1"),
        ("handshake_burst = 0\n", "/etc/uspd/uspd.toml:1:19: handshake_burst must be 1…1000000, got 0"),
        ("authorization_token_lifetime = 0\n", "/etc/uspd/uspd.toml:1:32: authorization_token_lifetime must be 1…31536000, got 0"),
        ("application_token_lifetime = 86401\n", "/etc/uspd/uspd.toml:1:30: application_token_lifetime must be 1…86400, got 86401"),
        ("login_delay_base = 61\n", "/etc/uspd/uspd.toml:1:20: login_delay_base must be 0…60, got 61"),
        ("login_delay_base = 2\nlogin_delay_max = 1\n", "/etc/uspd/uspd.toml:2:19: login_delay_max must be at least login_delay_base (2), got 1"),
        ("login_reply_min = 11\n", "/etc/uspd/uspd.toml:1:19: login_reply_min must be 0…10, got 11"),
        ("login_reply_min = 0.5\nlogin_reply_max = 0.2\n", "/etc/uspd/uspd.toml:2:19: login_reply_max must be at least login_reply_min (0.5), got 0.2"),
        ("max_connections = 100\nmax_unauthenticated = 101\n",
         "/etc/uspd/uspd.toml:2:23: max_unauthenticated must be at most max_connections (100), got 101"),
        ("login_token_binding = \"subnet\"\n",
         "/etc/uspd/uspd.toml:1:23: login_token_binding must be one of none, prefix, address, got \"subnet\""),
        ("log_level = \"loud\"\n",
         "/etc/uspd/uspd.toml:1:13: log_level must be one of trace, debug, info, notice, warning, error, critical, got \"loud\""),
        ("database = \"\"\n", "/etc/uspd/uspd.toml:1:12: database must not be empty"),
        ("node_name = \"\"\n", "/etc/uspd/uspd.toml:1:13: node_name must be 1 to 64 characters long"),
        ("node_name = \"node a\"\n", "/etc/uspd/uspd.toml:1:13: node_name \"node a\" may hold only letters, digits, '.', '_' and '-'"),
        ("host_key = 7\n", "/etc/uspd/uspd.toml:1:12: host_key must be a string, not an integer"),
        ("listen = \"127.0.0.1:7300\"\n", "/etc/uspd/uspd.toml:1:10: listen must be an array of strings, not a string"),
        ("listen = [\"127.0.0.1:7300\", 7301]\n", "/etc/uspd/uspd.toml:1:29: listen[1] must be a string, not an integer"),
    ])
    func errorsNameFileLineAndColumn(text: String, expected: String) {
        #expect(configError { try ServerConfigLoader.parse(text, path: p) }?.description == expected)
    }

    @Test(arguments: [
        ("127.0.0.1", "\"127.0.0.1\": expected host:port, for example 127.0.0.1:7300 or [::1]:7300"),
        ("::1:7300", "\"::1:7300\": an IPv6 address must be in brackets, as [::1]:7300"),
        ("[::1]7300", "\"[::1]7300\": expected \":port\" after \"]\""),
        ("[::1:7300", "\"[::1:7300\": missing \"]\" after the IPv6 address"),
        ("[fe80::zz]:1", "\"[fe80::zz]:1\": \"fe80::zz\" is not an IPv6 address"),
        ("[127.0.0.1]:1", "\"[127.0.0.1]:1\": \"127.0.0.1\" is not an IPv6 address"),
        ("host:99999", "\"host:99999\": the port must be 0…65535, got 99999"),
        ("host:http", "\"host:http\": the port \"http\" is not a number"),
        ("host:", "\"host:\": the port \"\" is not a number"),
        (":7300", "\":7300\": the host is empty"),
        ("999.1.1.1:80", "\"999.1.1.1:80\": \"999.1.1.1\" is neither an IPv4 address nor a host name"),
        ("bad_host:80", "\"bad_host:80\": \"bad_host\" is neither an IPv4 address nor a host name"),
        ("-lead.example:80", "\"-lead.example:80\": \"-lead.example\" is neither an IPv4 address nor a host name"),
    ])
    func listenEntriesAreValidated(entry: String, problem: String) {
        let text = "listen = [\n  \"127.0.0.1:7300\",\n  \"\(entry)\",\n]\n"
        let e = configError { try ServerConfigLoader.parse(text, path: p) }
        #expect(e?.code == .invalidValue)
        #expect(e?.description == "\(p):3:3: listen[1]: \(problem)")
    }

    @Test func listenAcceptsAddressesNamesAndEmpty() throws {
        let c = try ServerConfigLoader.parse(#"listen = ["0.0.0.0:0", "[::]:7300", "[2001:db8::1]:1", "localhost:65535", "a-b.example.org:1"]"#, path: p)
        #expect(c.listen.count == 5)
        #expect(try ServerConfigLoader.parse("listen = []", path: p).listen.isEmpty)
    }

    @Test func syntaxErrorsComeFromTOMLKitWithPosition() {
        let e = configError { try ServerConfigLoader.parse("max_connections = 5\nlisten = [\"a\"\n", path: p) }
        #expect(e?.code == .syntax)
        #expect(e?.description == "\(p):2:15: Error while parsing array: encountered end-of-file")
        let dup = configError { try ServerConfigLoader.parse("max_connections = 5\nmax_connections = 6\n", path: p) }
        #expect(dup?.code == .syntax)
        #expect(dup?.description == "\(p):2:19: Error while parsing key-value pair: cannot redefine existing integer 'max_connections'")
    }

    @Test func invalidUTF8AndNULAreSyntaxErrorsWithPosition() throws {
        let dir = TempDirectory()
        let path = dir.file("uspd.toml")
        try Data([0x61, 0x20, 0x3D, 0x20, 0x31, 0x0A, 0x62, 0x20, 0x3D, 0x20, 0x22, 0xC3, 0x28, 0x22, 0x0A]).write(to: URL(fileURLWithPath: path))
        #expect(configError { try ServerConfigLoader.load(path: path) }?.description == "\(path):2:6: invalid UTF-8")
        let nul = configError { try ServerConfigLoader.parse("log_level = \"info\"\n# x\u{0}y\n", path: p) }
        #expect(nul?.description == "\(p):2:4: NUL character")
    }

    @Test func earliestProblemIsThrownAndAllAreListed() throws {
        let dir = TempDirectory()
        let text = """
            log_level = "loud"
            max_connections = 0
            colour = 1
            """
        let path = dir.write("uspd.toml", text)
        // "colour" sorts first in TOMLKit's map, but line 1 is the first thing to fix.
        #expect(configError { try ServerConfigLoader.load(path: path) }?.line == 1)
        let all = ServerConfigLoader.problems(path: path)
        #expect(all.map(\.line) == [1, 2, 3])
        #expect(all.map(\.code) == [.invalidValue, .outOfRange, .unknownKey])
        #expect(ServerConfigLoader.problems(path: dir.write("ok.toml", "log_level = \"info\"")).isEmpty)
    }

    @Test func defaultMaxUnauthenticatedFollowsASmallMaxConnections() throws {
        let c = try ServerConfigLoader.parse("max_connections = 50", path: p)
        #expect(c.maxUnauthenticated == 50)
        let d = try ServerConfigLoader.parse("login_delay_base = 20", path: p)
        #expect(d.loginDelayMax == 20)
        let e = try ServerConfigLoader.parse("login_reply_min = 0.3", path: p)
        #expect(e.loginReplyMin == 0.3 && e.loginReplyMax == 0.3)
        let f = try ServerConfigLoader.parse("login_reply_min = 0\nlogin_reply_max = 0", path: p)
        #expect(f.loginReplyMin == 0 && f.loginReplyMax == 0)
    }

    @Test func hugeFileIsRefused() throws {
        let dir = TempDirectory()
        let path = dir.write("uspd.toml", String(repeating: "# padding\n", count: 110_000))
        let e = configError { try ServerConfigLoader.load(path: path) }
        #expect(e?.code == .unreadable)
        #expect(e?.message.contains("larger than the 1 MiB") == true)
    }
}

@Suite("HostPort")
struct HostPortTests {
    @Test func parsesAndPrints() throws {
        let v6 = try HostPort.parse("[::1]:7300").get()
        #expect(v6 == HostPort(host: "::1", port: 7300))
        #expect(v6.kind == .ipv6)
        #expect(v6.description == "[::1]:7300")
        let v4 = try HostPort.parse("10.0.0.1:22").get()
        #expect(v4.kind == .ipv4 && v4.description == "10.0.0.1:22")
        #expect(try HostPort.parse("example.com:443").get().kind == .name)
        #expect(throws: HostPort.Problem.self) { try HostPort.parse("example.com:0").get() }
        #expect(try HostPort.parse("example.com:0", ports: 0...65535).get().port == 0)
        #expect(throws: HostPort.Problem.self) { try HostPort.parse("a..b:1").get() }
        #expect(throws: HostPort.Problem.self) { try HostPort.parse("\(String(repeating: "a", count: 64)).com:1").get() }
    }
}

@Suite struct SilentHoldTimeTests {
    @Test(arguments: [SilentHoldTime.Distribution.uniform, .logUniform])
    func drawsStayInRangeAndSpreadOverIt(distribution: SilentHoldTime.Distribution) {
        let hold = SilentHoldTime(minimum: 2, maximum: 32, distribution: distribution)
        var generator = SystemRandomNumberGenerator()
        let draws = (0..<4000).map { _ in hold.draw(using: &generator) }
        #expect(draws.allSatisfy { (2...32).contains($0) })
        // The share below the geometric mean (8 s) tells the two apart: 0.2 uniform, 0.5 log-uniform.
        let below = Double(draws.filter { $0 < 8 }.count) / Double(draws.count)
        switch distribution {
        case .uniform: #expect(abs(below - 0.2) < 0.05, "\(below)")
        case .logUniform: #expect(abs(below - 0.5) < 0.05, "\(below)")
        }
        #expect(SilentHoldTime(minimum: 5, maximum: 5).draw(using: &generator) == 5)
    }
}
