import Testing
import USPTestSupport
@testable import USPConfig
import USPUnix

/// `[[broker]]` in uspd.toml (connection brokering) and the address types behind it.
@Suite struct BrokerRuleTests {
    let p = "/etc/uspd/uspd.toml"

    @Test func rulesLoadInOrderWithDefaultsAndRoundTripThroughTheEffectiveConfig() throws {
        let c = try ServerConfigLoader.parse("""
            [[broker]]
            who = ["relay", "group:brokers"]
            clients = ["10.20.0.0/16", "2001:db8:5::/48", "192.0.2.7"]
            tokens_per_minute = 5
            token_lifetime = 600

            [[broker]]
            who = ["group:all"]
            clients = ["0.0.0.0/0"]
            """, path: p)
        #expect(c.brokers.count == 2)
        let first = c.brokers[0]
        #expect(first.identities == ["relay"])
        #expect(first.groups == ["brokers"])
        #expect(first.clients.map(\.description) == ["10.20.0.0/16", "2001:db8:5::/48", "192.0.2.7/32"])
        #expect(first.tokensPerMinute == 5 && first.tokenLifetime == 600)
        #expect(c.brokers[1].tokensPerMinute == BrokerRule.defaultTokensPerMinute)
        #expect(c.brokers[1].tokenLifetime == BrokerRule.defaultTokenLifetime)
        // The first rule naming the caller wins.
        #expect(BrokerRule.rule(for: "relay", groups: ["all"], in: c.brokers) == first)
        #expect(BrokerRule.rule(for: "ann", groups: ["all"], in: c.brokers) == c.brokers[1])
        #expect(BrokerRule.rule(for: "ann", groups: ["staff"], in: c.brokers) == nil)
        #expect(try ServerConfigLoader.parse(c.tomlText, path: p) == c)
        #expect(ServerConfig().brokers.isEmpty)
    }

    @Test(arguments: [
        ("[[broker]]\nclients = [\"10.0.0.0/8\"]\n", "/etc/uspd/uspd.toml:1:1: [[broker]] #1 needs who = [identities or \"group:NAME\"]"),
        ("[[broker]]\nwho = [\"relay\"]\n", "/etc/uspd/uspd.toml:1:1: [[broker]] #1 needs clients = [networks it may broker for, e.g. \"10.0.0.0/8\"]"),
        ("[[broker]]\nwho = []\nclients = [\"10.0.0.0/8\"]\n", "/etc/uspd/uspd.toml:2:7: broker[0].who names nobody; list identities or \"group:NAME\""),
        ("[[broker]]\nwho = [\"group:\"]\nclients = [\"10.0.0.0/8\"]\n", "/etc/uspd/uspd.toml:2:8: broker[0].who[0]: \"group:\" names no group"),
        ("[[broker]]\nwho = [\"relay\"]\nclients = []\n", "/etc/uspd/uspd.toml:3:11: broker[0].clients is empty: a broker must be limited to some networks"),
        ("[[broker]]\nwho = [\"relay\"]\nclients = [\"10.0.0.1/8\"]\n",
         "/etc/uspd/uspd.toml:3:12: broker[0].clients[0]: \"10.0.0.1/8\" has host bits set; the network is 10.0.0.0/8"),
        ("[[broker]]\nwho = [\"relay\"]\nclients = [\"10.0.0.0/33\"]\n", "/etc/uspd/uspd.toml:3:12: broker[0].clients[0]: \"10.0.0.0/33\": the prefix length must be 0…32"),
        ("[[broker]]\nwho = [\"relay\"]\nclients = [\"relay.example/24\"]\n",
         "/etc/uspd/uspd.toml:3:12: broker[0].clients[0]: \"relay.example/24\" is not an IPv4 or IPv6 network (expected ADDRESS/BITS, e.g. 10.1.0.0/16)"),
        ("[[broker]]\nwho = [\"relay\"]\nclients = [\"10.0.0.0/8\"]\ntokens_per_minute = 0\n", "/etc/uspd/uspd.toml:4:21: broker[0].tokens_per_minute must be 1…10000, got 0"),
        ("[[broker]]\nwho = [\"relay\"]\nclients = [\"10.0.0.0/8\"]\ntoken_lifetime = 3601\n", "/etc/uspd/uspd.toml:4:18: broker[0].token_lifetime must be 1…3600, got 3601"),
        ("[[broker]]\nwho = [\"relay\"]\nclients = [\"10.0.0.0/8\"]\ncleints = 1\n", "/etc/uspd/uspd.toml:4:1: unknown key \"cleints\" in [broker[0]] (did you mean \"clients\"?)"),
        ("broker = \"relay\"\n", "/etc/uspd/uspd.toml:1:10: broker must be an array of tables ([[broker]]), not a string"),
    ])
    func mistakesNameFileLineAndColumn(text: String, expected: String) {
        #expect(configError { try ServerConfigLoader.parse(text, path: p) }?.description == expected)
    }

    @Test func addressesAreComparedAsUspdSeesThem() throws {
        let v4 = try IPNetwork.parse("10.20.0.0/16").get()
        #expect(v4.contains(try #require(IPAddress("10.20.255.1"))))
        #expect(!v4.contains(try #require(IPAddress("10.21.0.1"))))
        // An IPv4-mapped IPv6 address is the IPv4 address it carries.
        #expect(v4.contains(try #require(IPAddress("::ffff:10.20.1.2"))))
        #expect(IPAddress("::ffff:10.20.1.2")?.description == "10.20.1.2")
        // Canonical text, as inet_ntop writes it and uspd reports peers.
        #expect(IPAddress("2001:DB8:0:0:0:0:0:7")?.description == "2001:db8::7")
        let v6 = try IPNetwork.parse("2001:db8:5::/48").get()
        #expect(v6.contains(try #require(IPAddress("2001:db8:5:ffff::1"))))
        #expect(!v6.contains(try #require(IPAddress("2001:db8:6::1"))))
        #expect(!v6.contains(try #require(IPAddress("10.20.1.2"))))
        #expect(try IPNetwork.parse("0.0.0.0/0").get().contains(try #require(IPAddress("203.0.113.9"))))
        // A network written as IPv4-mapped IPv6 is the IPv4 network.
        #expect(try IPNetwork.parse("::ffff:10.0.0.0/104").get().description == "10.0.0.0/8")
        if case .failure(let p) = IPNetwork.parse("::ffff:10.0.0.0/8") {
            #expect(p.message == "\"::ffff:10.0.0.0/8\": the prefix length must be 96…128")
        } else { Issue.record("a mapped network with a prefix under 96 parsed") }
        for bad in ["", "10.0.0", "10.0.0.256", "01.2.3.4x", "fe80::1%eth0", "[::1]", "::1/", "::1/129", "10.0.0.0/-1", "10.0.0.0/+8"] {
            if case .success(let n) = IPNetwork.parse(bad) { Issue.record("\(bad) parsed as \(n)") }
        }
    }
}
