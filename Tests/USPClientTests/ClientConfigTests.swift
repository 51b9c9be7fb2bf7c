import Foundation
import Glibc
import Testing
import USPCore
@testable import USPClient

/// HOME/config: ssh_config syntax, first value wins, Host globs and negation, and every error
/// naming file:line.
@Suite struct ClientConfigTests {
    static let key = Base64URL.encode([UInt8](0..<32))

    func parse(_ text: String) throws(USPClientError) -> ClientConfig { try ClientConfig(parsing: text, path: "cfg") }

    func failure(_ text: String) -> USPClientError? {
        do throws(USPClientError) {
            _ = try parse(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func firstObtainedValueWins() throws {
        let c = try parse("""
            Host prod
                Port 7400
                User alice
            Host *
                Port 7300
                User nobody
                Application echo
            """)
        let s = c.settings(for: "prod")
        #expect(s.port == 7400 && s.user == "alice" && s.application == "echo")
        #expect(s.origin(.port) == .file(path: "cfg", line: 2))
        #expect(s.origin(.application) == .file(path: "cfg", line: 7))
        let other = c.settings(for: "other")
        #expect(other.port == 7300 && other.user == "nobody")
        // The command line comes first.
        let o = try ClientConfig.option("Port=9000")
        #expect(c.settings(for: "prod", commandLine: [o]).port == 9000)
        #expect(c.settings(for: "prod", commandLine: [o]).origin(.port) == .commandLine("-o Port=9000"))
    }

    @Test func linesBeforeAnyHostApplyToEveryServer() throws {
        let c = try parse("DNS no\nHost a\n  DNS yes\n")
        #expect(c.settings(for: "a").flag(.dns) == false)
        #expect(c.settings(for: "b").flag(.dns) == false)
    }

    @Test func globsAndNegation() throws {
        let c = try parse("""
            Host web-?? *.example.org !old.example.org
                User one
            Host !a* b*
                User two
            Host !only-negated
                User three
            """)
        #expect(c.settings(for: "web-01").user == "one")
        #expect(c.settings(for: "web-001").user == nil)
        #expect(c.settings(for: "x.example.org").user == "one")
        #expect(c.settings(for: "Y.Example.ORG").user == "one", "host patterns match case-insensitively")
        #expect(c.settings(for: "old.example.org").user == nil, "a negated match excludes the block")
        #expect(c.settings(for: "bee").user == "two")
        #expect(c.settings(for: "abee").user == nil)
        #expect(c.settings(for: "anything").user == nil, "a line of negations alone matches nothing")
    }

    @Test func quotingEqualsAndComments() throws {
        let c = try parse("""
            # a comment
              \t
            Host q
                SSHKeyFile "/keys/my key"   # trailing comment
                User='bob smith'
                Application = ssh
                HostName=%h.example.org
                ServerKey \(Self.key)
            Host e
                SSHKeyFile /keys/a\\ b
                User "say \\"hi\\""
            """)
        let s = c.settings(for: "q")
        #expect(s.sshKeyFile == "/keys/my key")
        #expect(s.user == "bob smith")
        #expect(s.application == "ssh")
        #expect(s.hostName == "q.example.org")
        #expect(s.serverKey == [UInt8](0..<32))
        #expect(c.settings(for: "e").sshKeyFile == "/keys/a b")
        #expect(c.settings(for: "e").user == "say \"hi\"")
        #expect(try ClientConfig.tokens("Port=7300")?.arguments == ["7300"])
        #expect(try ClientConfig.tokens("Port = 7300")?.arguments == ["7300"])
        #expect(try ClientConfig.tokens("  # only a comment") == nil)
    }

    @Test func keywordsAreCaseInsensitive() throws {
        let c = try parse("host x\n  hostname y.example.org\n  PORT 7401\n  servERkeychecking no\n")
        let s = c.settings(for: "x")
        #expect(s.hostName == "y.example.org" && s.port == 7401 && s.serverKeyChecking == .no)
    }

    @Test func unknownKeywordNamesLineAndSuggests() {
        let e = failure("Host a\n  Port 1\n  HostNmae b\n")
        #expect(e?.code == .invalidConfig)
        #expect(e?.message == "cfg:3: unknown keyword \"HostNmae\" (did you mean \"HostName\"?)")
        let far = failure("Frobnicate yes\n")
        #expect(far?.message.hasPrefix("cfg:1: unknown keyword \"Frobnicate\" (known: Host, URI, HostName") == true, "\(far?.message ?? "")")
        // Unknown keywords are errors in blocks that do not match, too.
        #expect(failure("Host never\n  Prot 1\n")?.message == "cfg:2: unknown keyword \"Prot\" (did you mean \"Port\"?)")
        #expect(failure("IdentityFile ~/.ssh/id\n")?.message.contains("one identity key per client home") == true)
    }

    @Test func ignoreUnknownSkipsLaterUnknownKeywords() throws {
        let c = try parse("IgnoreUnknown ForwardAgent,Identity*\nHost a\n  ForwardAgent yes\n  IdentityFile x\n  User u\n")
        #expect(c.settings(for: "a").user == "u")
        #expect(failure("Host a\n  ForwardAgent yes\nIgnoreUnknown ForwardAgent\n")?.message.hasPrefix("cfg:2:") == true, "only lines after it")
        #expect(failure("IgnoreUnknown *\nMatch all\n")?.message == "cfg:2: Match: Match blocks are not supported; use Host patterns")
    }

    @Test func badValuesSayWhatIsExpected() {
        #expect(failure("Port 70000\n")?.message == "cfg:1: Port \"70000\": expected a port number from 1 to 65535")
        #expect(failure("Host a\n  DNS maybe\n")?.message == "cfg:2: DNS \"maybe\": expected yes or no")
        #expect(failure("ServerKeyChecking ask\n")?.message
            == "cfg:1: ServerKeyChecking \"ask\": expected yes (only servers in known_servers), accept-new (trust on first use) or no")
        #expect(failure("ServerKey abc\n")?.message.hasPrefix("cfg:1: ServerKey \"abc\": expected the server's X25519 public key") == true)
        #expect(failure("DNSServer 1.2.3\n")?.message == "cfg:1: DNSServer \"1.2.3\": expected an IPv4 address with an optional port, as 127.0.0.1:5353")
        #expect(failure("HostName x.org:7300\n")?.message.hasPrefix("cfg:1: HostName \"x.org:7300\": expected a host name") == true)
        #expect(failure("Application Big\n")?.message.hasPrefix("cfg:1: Application \"Big\": expected an application name") == true)
        #expect(failure("URI http://x\n")?.message.hasPrefix("cfg:1: URI: invalid server URI \"http://x\"") == true)
        #expect(failure("Port\n")?.message == "cfg:1: Port needs a value: a port number from 1 to 65535")
        #expect(failure("User a b\n")?.message == "cfg:1: User takes one value (quote it if it has spaces)")
        #expect(failure("Host\n")?.message == "cfg:1: Host needs at least one pattern")
        #expect(failure("User \"open\n")?.message == "cfg:1: unterminated double quote")
        #expect(throws: USPClientError.self) { try ClientConfig.option("Host=x") }
        #expect((try? ClientConfig.option("Bogus=1")) == nil)
    }

    @Test func uriStandsForHostNamePortAndKeyEachFirstWins() throws {
        let c = try parse("""
            Host a
                Port 7999
                URI usp://\(Self.key)@10.0.0.5:7444
                HostName ignored.example.org
            """)
        let r = try c.resolve("a")
        #expect(r.server.host == "10.0.0.5" && r.server.port == 7999 && r.server.serverKey == [UInt8](0..<32))
        #expect(r.settings.origin(.hostName) == .file(path: "cfg", line: 3))
        #expect(r.settings.origin(.port) == .file(path: "cfg", line: 2))
        // What is typed comes first: a port or key in the argument beats the file.
        let typed = try c.resolve("a:7555")
        #expect(typed.server.port == 7555 && typed.server.host == "10.0.0.5")
        // Without a port anywhere the URI's port stays open for DNS (SRV).
        let plain = try c.resolve("plain.example.org")
        #expect(plain.server.hostPort == "plain.example.org:7300" && !plain.server.portGiven)
        #expect(c.aliases(resolvingTo: "10.0.0.5:7999") == ["a"])
    }

    @Test func settingsBecomeConnectionOptions() throws {
        let c = try parse("Host a\n  ServerKeyChecking yes\n  DNS no\n  Anonymous yes\n  DNSServer 127.0.0.1:5353\n  UseAgent no\n")
        var o = USPConnectionOptions()
        let s = c.settings(for: "a")
        try s.apply(to: &o)
        #expect(o.serverKeyChecking == .strict && !o.dns.enabled && o.anonymous && o.dns.server?.port == 5353 && !s.useAgent)
        let clash = try parse("DNS no\nRequireDNSSEC yes\n").settings(for: "x")
        #expect(throws: USPClientError.self) { try clash.apply(to: &o) }
        let rows = c.settings(for: "b").rows
        #expect(rows.first { $0.keyword == .serverKeyChecking }?.value == "accept-new")
        #expect(rows.first { $0.keyword == .serverKeyChecking }?.origin == "default")
    }

    @Test func fileWritableByOthersIsRefused() throws {
        let t = TempHome()
        t.write("config", "Host a\n  Port 7400\n", mode: 0o666)
        do throws(USPClientError) {
            _ = try ClientConfig.load(home: t.home)
            Issue.record("a world-writable config was read")
        } catch {
            #expect(error.code == .localFile)
            #expect(error.message.contains("too open") && error.message.contains("chmod 600 \(t.home.configPath)"), "\(error.message)")
        }
        chmod(t.home.configPath, 0o644)
        #expect(try ClientConfig.load(home: t.home).settings(for: "a").port == 7400)
        // -F none reads nothing; a missing default file is the empty configuration; a missing -F file is an error.
        #expect(try ClientConfig.load(home: t.home, file: "none").settings(for: "a").port == nil)
        #expect(try ClientConfig.load(home: ClientHome(directory: t.path + "/absent")).blocks.count == 1)
        #expect(throws: USPClientError.self) { try ClientConfig.load(home: t.home, file: t.path + "/absent") }
    }

    @Test func savedLoginsAreListedAndRemoved() throws {
        let t = TempHome()
        let server = try ServerURI(parsing: "usp://example.org:7300")
        try t.home.saveLogin(SavedLogin(server: server.hostPort, user: "alice", method: "password", token: "usp1.AAAA", savedAt: 42), for: server)
        t.write("tokens/junk.json", "{}", mode: 0o600)
        let list = try t.home.savedLogins()
        #expect(list.count == 2)
        #expect(list.first { $0.login != nil }?.login?.user == "alice")
        #expect(list.first { $0.login == nil }?.problem == "not a saved login")
        #expect(t.home.removeSavedLogin(at: t.home.tokenPath(for: server)))
        #expect(try t.home.loadLogin(for: server) == nil)
    }
}
