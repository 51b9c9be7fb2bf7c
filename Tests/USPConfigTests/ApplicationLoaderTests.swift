import Foundation
import Testing
import USPTestSupport
@testable import USPConfig

@Suite("apps.d/*.toml")
struct ApplicationLoaderTests {
    let p = "apps.d/ssh.toml"

    @Test func theDocumentedExample() throws {
        let a = try ApplicationLoader.parse("""
            name = "ssh"
            description = "OpenSSH on this host"
            visibility = "authenticated"            # "public", "authenticated", or ["alice", "group:admins"]
            [expected_request_body]
            user = "string?"
            [launch]
            tcp = "127.0.0.1:22"                      # or: exec = ["/usr/bin/cat"]
            [limits]
            max_sessions = 20
            token_lifetime = 60                      # seconds an application token stays valid
            """, path: p)
        #expect(a == ApplicationDefinition(name: "ssh", description: "OpenSSH on this host", visibility: .authenticated,
                                           expectedRequestBody: ["user": "string?"], launch: .tcp(host: "127.0.0.1", port: 22),
                                           limits: .init(maxSessions: 20, tokenLifetime: 60), sourcePath: p))
    }

    @Test func execWithEnvironmentAndAListVisibility() throws {
        let a = try ApplicationLoader.parse("""
            name = "echo.v2_test-1"
            visibility = ["alice", "group:admins", "bob", "group:ops"]

            [expected_request_body]
            message = "string"
            count = "integer?"
            ratio = "number"
            flag = "boolean?"
            meta = "object"
            items = "array"
            anything = ""
            whatever = "any?"
            maybe = "?"

            [launch]
            exec = ["/usr/bin/env", "--", "cat"]

            [launch.environment]
            LANG = "C.UTF-8"
            _X1 = ""
            """, path: p)
        #expect(a.name == "echo.v2_test-1")
        #expect(a.description == "")
        #expect(a.visibility == .only(identities: ["alice", "bob"], groups: ["admins", "ops"]))
        #expect(a.expectedRequestBody == ["message": "string", "count": "integer?", "ratio": "number", "flag": "boolean?", "meta": "object",
                                          "items": "array", "anything": "", "whatever": "any?", "maybe": "?"])
        #expect(a.launch == .exec(command: ["/usr/bin/env", "--", "cat"], environment: ["LANG": "C.UTF-8", "_X1": ""]))
        #expect(a.limits == .init(maxSessions: nil, tokenLifetime: 60))
        #expect(a.isVisible(to: "bob", groups: []))
        #expect(a.isVisible(to: "carol", groups: ["ops"]))
        #expect(!a.isVisible(to: "carol", groups: ["users"]))
        #expect(!a.isVisible(to: nil, groups: ["admins"]))
    }

    @Test func defaults() throws {
        let a = try ApplicationLoader.parse(app(), path: p, defaultTokenLifetime: 45)
        #expect(a.visibility == .authenticated)  // the safe default: not on the pre-login menu
        #expect(a.expectedRequestBody.isEmpty)
        #expect(a.limits == .init(maxSessions: nil, tokenLifetime: 45))
        #expect(try ApplicationLoader.parse(app("visibility = \"public\""), path: p).visibility == .public)
        #expect(try ApplicationLoader.parse(app("[limits]\nmax_sessions = 1"), path: p).limits.maxSessions == 1)
    }

    @Test func streamAndUnixLaunches() throws {
        let fd3 = try ApplicationLoader.parse("name = \"x\"\n[launch]\nexec = [\"/bin/app\"]\nstream = \"fd3\"\n", path: p)
        #expect(fd3.launch == .exec(command: ["/bin/app"], environment: [:], stream: .fd3))
        let stdio = try ApplicationLoader.parse("name = \"x\"\n[launch]\nexec = [\"/bin/app\"]\nstream = \"stdio\"\n", path: p)
        #expect(stdio.launch == .exec(command: ["/bin/app"], environment: [:]))
        let unix = try ApplicationLoader.parse("name = \"x\"\n[launch]\nunix = \"/run/myapp.sock\"\n", path: p)
        #expect(unix.launch == .unix(path: "/run/myapp.sock"))
        let relayFree = try ApplicationLoader.parse("name = \"x\"\n[launch]\nunix = \"/run/myapp.sock\"\nrelay_free = true\n", path: p)
        #expect(relayFree.launch == .unix(path: "/run/myapp.sock", relayFree: true))
        let relayed = try ApplicationLoader.parse("name = \"x\"\n[launch]\nunix = \"/run/myapp.sock\"\nrelay_free = false\n", path: p)
        #expect(relayed.launch == .unix(path: "/run/myapp.sock", relayFree: false))
        #expect(relayed.shape == .none)
        let udp = try ApplicationLoader.parse("name = \"x\"\n[launch]\nudp = \"[::1]:53\"\n", path: p)
        #expect(udp.launch == .udp(host: "::1", port: 53))
        let shaped = try ApplicationLoader.parse("name = \"x\"\nshape = \"interactive\"\n[launch]\nexec = [\"/bin/sh\"]\n", path: p)
        #expect(shaped.shape == .interactive)
    }

    @Test func inlineAndDottedTables() throws {
        let a = try ApplicationLoader.parse("""
            name = "x"
            launch = { exec = ["/bin/cat"], environment = { A = "1" } }
            limits.token_lifetime = 5
            """, path: p)
        #expect(a.launch == .exec(command: ["/bin/cat"], environment: ["A": "1"]))
        #expect(a.limits.tokenLifetime == 5)
    }

    /// The issue's own example message, to the character.
    @Test func unknownKeyLikeTheIssueSays() {
        let text = """
            # SSH access for the team.
            #
            # Managed by hand.
            name = "ssh"
            description = \"\"\"
            Multi-line text with things that look like TOML:
            [launch]
            visibility = "public"
            \"\"\"
            # The next key has a typo.

              visiblity = "public"

            [launch]
            tcp = "127.0.0.1:22"
            """
        let e = configError { try ApplicationLoader.parse(text, path: "apps.d/ssh.toml") }
        #expect(e?.description == #"apps.d/ssh.toml:12:3: unknown key "visiblity" (did you mean "visibility"?)"#)
        #expect(e?.code == .unknownKey)
    }

    @Test(arguments: [
        (#"name = "SSH""#, "1:8: name \"SSH\" is not a valid application name: 1 to 63 of a-z, 0-9, \".\", \"_\", \"-\", starting with a letter or digit"),
        (#"name = "-x""#, "1:8: name \"-x\" is not a valid application name: 1 to 63 of a-z, 0-9, \".\", \"_\", \"-\", starting with a letter or digit"),
        (#"name = """#, "1:8: name \"\" is not a valid application name: 1 to 63 of a-z, 0-9, \".\", \"_\", \"-\", starting with a letter or digit"),
        (#"name = "a b""#, "1:8: name \"a b\" is not a valid application name: 1 to 63 of a-z, 0-9, \".\", \"_\", \"-\", starting with a letter or digit"),
        ("name = 5", "1:8: name must be a string, not an integer"),
    ])
    func badNames(line: String, expected: String) {
        let text = "\(line)\n[launch]\ntcp = \"127.0.0.1:22\"\n"
        #expect(configError { try ApplicationLoader.parse(text, path: p) }?.description == "\(p):\(expected)")
    }

    @Test func nameLength() throws {
        #expect(ApplicationLoader.isValidName(String(repeating: "a", count: 63)))
        #expect(!ApplicationLoader.isValidName(String(repeating: "a", count: 64)))
        #expect(ApplicationLoader.isValidName("0"))
        #expect(!ApplicationLoader.isValidName("é"))
        #expect(!ApplicationLoader.isValidName(".x"))
    }

    @Test func missingNameAndLaunch() {
        #expect(configError { try ApplicationLoader.parse("[launch]\ntcp = \"127.0.0.1:22\"\n", path: p) }?.description
                == "\(p): missing required key \"name\"")
        #expect(configError { try ApplicationLoader.parse("name = \"x\"\n", path: p) }?.description
                == "\(p): missing required table [launch] with exec = [\"/path/to/program\", …], tcp = \"host:port\", udp = \"ip:port\" or unix = \"/path/to/socket\"")
        #expect(configError { try ApplicationLoader.parse("", path: p) }?.code == .missingKey)
    }

    @Test(arguments: [
        // Launch
        ("[launch]\n", "2:1: [launch] needs exec = [\"/path/to/program\", …], tcp = \"host:port\", udp = \"ip:port\" or unix = \"/path/to/socket\""),
        ("[launch]\ntcp = \"127.0.0.1:22\"\nexec = [\"/bin/cat\"]\n", "4:1: [launch] has both \"tcp\" and \"exec\"; an application is launched one way"),
        ("[launch]\nexec = [\"/bin/cat\"]\ntcp = \"127.0.0.1:22\"\n", "4:1: [launch] has both \"exec\" and \"tcp\"; an application is launched one way"),
        ("[launch]\nexec = []\n", "3:8: launch.exec is empty: it needs at least the program"),
        ("[launch]\nexec = [\"\"]\n", "3:8: launch.exec[0], the program, is empty"),
        ("[launch]\nexec = \"/bin/cat\"\n", "3:8: launch.exec must be an array of strings, not a string"),
        ("[launch]\nexec = [\"/bin/cat\", 1]\n", "3:21: launch.exec[1] must be a string, not an integer"),
        ("[launch]\ntcp = \"localhost\"\n", "3:7: launch.tcp: \"localhost\": expected host:port, for example 127.0.0.1:7300 or [::1]:7300"),
        ("[launch]\ntcp = \"127.0.0.1:0\"\n", "3:7: launch.tcp: \"127.0.0.1:0\": the port must be 1…65535, got 0"),
        ("[launch]\ntcp = 22\n", "3:7: launch.tcp must be a string, not an integer"),
        ("[launch]\ntcp = \"127.0.0.1:22\"\n[launch.environment]\nA = \"1\"\n", "4:1: launch.environment applies to exec, not to tcp"),
        ("[launch]\nexec = [\"/bin/cat\"]\nenvironment = { 1A = \"x\" }\n", "4:17: launch.environment: \"1A\" is not a variable name (letters, digits and _, not starting with a digit)"),
        ("[launch]\nexec = [\"/bin/cat\"]\nenvironment = { A = 1 }\n", "4:21: launch.environment.A must be a string, not an integer"),
        ("[launch]\nexec = [\"/bin/cat\"]\nenviron = { A = \"1\" }\n", "4:1: unknown key \"environ\" in [launch]"),
        ("launch = \"tcp\"\n", "2:10: launch must be a table, not a string"),
        ("[launch]\nunix = \"run/app.sock\"\n", "3:8: launch.unix: \"run/app.sock\" must be an absolute socket path of at most 107 bytes"),
        ("[launch]\nunix = \"/\(String(repeating: "x", count: 107))\"\n",
         "3:8: launch.unix: \"/\(String(repeating: "x", count: 107))\" must be an absolute socket path of at most 107 bytes"),
        ("[launch]\nunix = \"/run/a.sock\"\ntcp = \"127.0.0.1:22\"\n", "4:1: [launch] has both \"unix\" and \"tcp\"; an application is launched one way"),
        ("[launch]\nunix = \"/run/a.sock\"\nstream = \"fd3\"\n", "4:1: launch.stream applies to exec, not to unix"),
        ("[launch]\ntcp = \"127.0.0.1:22\"\nrelay_free = true\n", "4:1: launch.relay_free applies to unix, not to tcp"),
        ("[launch]\nunix = \"/run/a.sock\"\nrelay_free = \"yes\"\n", "4:14: launch.relay_free must be true or false, not a string"),
        ("[launch]\nexec = [\"/bin/cat\"]\nstream = \"fd4\"\n", "4:10: launch.stream must be \"stdio\" or \"fd3\", got \"fd4\""),
        ("launch = { tcp = \"127.0.0.1:22\", port = 22 }\n", "2:34: unknown key \"port\" in [launch]"),
        ("launch.tcp = \"127.0.0.1:99999\"\n", "2:14: launch.tcp: \"127.0.0.1:99999\": the port must be 1…65535, got 99999"),
        // UDP
        ("[launch]\nudp = \"dns.example:53\"\n", "3:7: launch.udp: \"dns.example\" must be an IP address: a UDP target is not looked up by name"),
        ("[launch]\nudp = \"127.0.0.1\"\n", "3:7: launch.udp: \"127.0.0.1\": expected host:port, for example 127.0.0.1:7300 or [::1]:7300"),
        ("[launch]\nudp = \"127.0.0.1:53\"\nrelay_free = true\n", "4:1: launch.relay_free applies to unix, not to udp"),
        // Shaping
        ("shape = \"bulk\"\n[launch]\ntcp = \"127.0.0.1:22\"\n", "2:9: shape must be \"none\" or \"interactive\", got \"bulk\""),
        ("shape = 1\n[launch]\ntcp = \"127.0.0.1:22\"\n", "2:9: shape must be a string, not an integer"),
        ("shape = \"interactive\"\n[launch]\nunix = \"/run/a.sock\"\nrelay_free = true\n",
         "2:9: shape = \"interactive\" cannot go with relay_free = true: a shaped session stays relayed by uspd"),
        // Visibility
        ("visibility = \"everyone\"\n[launch]\ntcp = \"127.0.0.1:22\"\n",
         "2:14: visibility must be \"public\", \"authenticated\" or an array of names and \"group:NAME\", got \"everyone\""),
        ("visibility = []\n[launch]\ntcp = \"127.0.0.1:22\"\n", "2:14: visibility is an empty list: nobody would see this application"),
        ("visibility = [\"alice\", \"group:\"]\n[launch]\ntcp = \"127.0.0.1:22\"\n", "2:24: visibility[1]: \"group:\" is not a group name"),
        ("visibility = [\"al ice\"]\n[launch]\ntcp = \"127.0.0.1:22\"\n", "2:15: visibility[0]: \"al ice\" is not an identity name"),
        ("visibility = [\"alice\", 3]\n[launch]\ntcp = \"127.0.0.1:22\"\n", "2:24: visibility[1] must be a string, not an integer"),
        ("visibility = true\n[launch]\ntcp = \"127.0.0.1:22\"\n",
         "2:14: visibility must be \"public\", \"authenticated\" or an array of names, not a boolean"),
        // Request body
        ("[expected_request_body]\nuser = \"str\"\n[launch]\ntcp = \"127.0.0.1:22\"\n",
         "3:8: expected_request_body.user: unknown type \"str\"; use string, integer, number, boolean, object, array, any or \"\", optionally followed by \"?\""),
        ("[expected_request_body]\nuser = \"string??\"\n[launch]\ntcp = \"127.0.0.1:22\"\n",
         "3:8: expected_request_body.user: unknown type \"string??\"; use string, integer, number, boolean, object, array, any or \"\", optionally followed by \"?\""),
        ("[expected_request_body]\n\"my field\" = 1\n[launch]\ntcp = \"127.0.0.1:22\"\n",
         "3:14: expected_request_body.\"my field\" must be a string, not an integer"),
        ("[expected_request_body]\n\"\" = \"string\"\n[launch]\ntcp = \"127.0.0.1:22\"\n", "3:1: expected_request_body: a field name is empty"),
        ("expected_request_body = [\"user\"]\n[launch]\ntcp = \"127.0.0.1:22\"\n", "2:25: expected_request_body must be a table, not an array"),
        // Limits
        ("[launch]\ntcp = \"127.0.0.1:22\"\n[limits]\nmax_sessions = 0\n", "5:16: limits.max_sessions must be 1…1000000, got 0"),
        ("[launch]\ntcp = \"127.0.0.1:22\"\n[limits]\ntoken_lifetime = 0\n", "5:18: limits.token_lifetime must be 1…86400, got 0"),
        ("[launch]\ntcp = \"127.0.0.1:22\"\n[limits]\ntoken_lifetime = 86401\n", "5:18: limits.token_lifetime must be 1…86400, got 86401"),
        ("[launch]\ntcp = \"127.0.0.1:22\"\n[limits]\ntoken_lifetime = 1.5\n", "5:18: limits.token_lifetime must be an integer, not a float"),
        ("[launch]\ntcp = \"127.0.0.1:22\"\n[limits]\nmax_session = 3\n", "5:1: unknown key \"max_session\" in [limits] (did you mean \"max_sessions\"?)"),
        ("limits = 3\n[launch]\ntcp = \"127.0.0.1:22\"\n", "2:10: limits must be a table, not an integer"),
        // Top level
        ("description = [\"a\"]\n[launch]\ntcp = \"127.0.0.1:22\"\n", "2:15: description must be a string, not an array"),
        ("[[launch]]\ntcp = \"127.0.0.1:22\"\n", "2:1: launch must be a table, not an array"),
        ("[extra]\n[launch]\ntcp = \"127.0.0.1:22\"\n", "2:1: unknown key \"extra\""),
    ])
    func errorsNameFileLineAndColumn(rest: String, expected: String) {
        let text = "name = \"ssh\"\n" + rest
        let e = configError { try ApplicationLoader.parse(text, path: p) }
        #expect(e?.description == "\(p):\(expected)")
    }

    @Test func syntaxErrorPosition() {
        let e = configError { try ApplicationLoader.parse("name = \"ssh\"\n[launch]\ntcp = 127.0.0.1:22\n", path: p) }
        #expect(e?.code == .syntax)
        #expect(e?.line == 3)
        #expect(e?.description.hasPrefix("\(p):3:") == true)
    }

    @Test func fieldTypeVocabularyMatchesTheCore() {
        for t in ["string", "integer", "number", "boolean", "object", "array", "any", "", "string?", "?", "any?"] {
            #expect(ApplicationLoader.isValidFieldType(t), "\(t)")
        }
        for t in ["String", "int", "float", "null", "??", "string?!", " string"] {
            #expect(!ApplicationLoader.isValidFieldType(t), "\(t)")
        }
    }

    @Test func loadFromDiskSetsSourcePath() throws {
        let dir = TempDirectory()
        let path = dir.write("cat.toml", app(name: "cat"))
        let a = try ApplicationLoader.load(path: path)
        #expect(a.sourcePath == path)
        #expect(a.name == "cat")
        let problems = ApplicationLoader.problems(path: dir.write("bad.toml", "name = \"BAD\"\ncolour = 1\n[launch]\n"))
        #expect(problems.map(\.line) == [1, 2, 3])
    }
}

@Suite("TOML positions")
struct TOMLPositionsTests {
    @Test func keysValuesAndHeaders() {
        let text = """
            a = 1
            "quoted key" = 'lit'
            b.c = "x"  # comment
            arr = [
              "one", # comment in array
              { k = 2 },
            ]
            s = \"\"\"
            fake = 1
            \"\"\"
            [t]
              d = 1979-05-27 07:32:00Z
              e = 3
            [[arr2]]
            f = 1
            [[arr2]]
            f = 2
            """
        let pos = TOMLPositions(text)
        func at(_ l: Int, _ c: Int) -> TOMLPositions.Position { .init(line: l, column: c) }
        #expect(pos.key(["a"]) == at(1, 1))
        #expect(pos.value(["a"]) == at(1, 5))
        #expect(pos.key(["quoted key"]) == at(2, 1))
        #expect(pos.value(["quoted key"]) == at(2, 16))
        #expect(pos.key(["b"]) == at(3, 1))
        #expect(pos.key(["b", "c"]) == at(3, 3))
        #expect(pos.value(["arr", "[0]"]) == at(5, 3))
        #expect(pos.value(["arr", "[1]"]) == at(6, 3))
        #expect(pos.key(["arr", "[1]", "k"]) == at(6, 5))
        #expect(pos.key(["fake"]) == nil)  // inside a multi-line string
        #expect(pos.key(["t"]) == at(11, 1))
        #expect(pos.key(["t", "e"]) == at(13, 3))  // the date-time with a space did not derail the scan
        #expect(pos.key(["arr2", "[0]", "f"]) == at(15, 1))
        #expect(pos.key(["arr2", "[1]", "f"]) == at(17, 1))
    }
}
