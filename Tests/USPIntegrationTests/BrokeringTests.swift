import Foundation
import Glibc
import Testing

/// Connection brokering with real hosts: four network namespaces on veth links to a server
/// namespace. The broker logs in and gets a token for the beneficiary's address (`usp broker`);
/// the beneficiary, with no login of its own, connects with it (`usp connect --token`); the
/// broker's own address and a fourth host are refused; logging the broker out revokes the token
/// and ends the beneficiary's stream; the audit chain leads from the stream to the broker.
@Suite(.serialized) struct BrokeringTests {
    /// One test host: a namespace with a veth link to the server's namespace, on 10.77.N.0/24
    /// (the server is .1, the host .2).
    struct Host {
        let namespace: String
        let address: String
        let serverAddress: String
    }

    struct Network {
        let server: String
        let hosts: [String: Host]
        let ip: String

        func run(_ host: String?, _ arguments: [String], stdin: String? = nil, timeout: Double = 30) throws -> (status: Int32, stdout: String, stderr: String) {
            let ns = host.map { hosts[$0]!.namespace } ?? server
            return try Harness.run(ip, ["netns", "exec", ns] + arguments, stdin: stdin, timeout: timeout)
        }

        func tearDown() {
            for ns in [server] + hosts.values.map(\.namespace) { _ = try? Harness.run(ip, ["netns", "del", ns]) }
        }
    }

    /// The server's namespace and one per host, or nil (a SKIP line, or a failure in CI) without root or ip.
    static func network(_ names: [String]) throws -> Network? {
        guard getuid() == 0, let ip = FastOpenTests.ip else {
            let note = "brokering tests need root and ip(8) for network namespaces"
            if Harness.strict { Issue.record("\(note)") } else { print("SKIP: \(note)") }
            return nil
        }
        let tag = getpid() % 100_000
        let server = "usp-bk\(tag)-srv"
        var hosts: [String: Host] = [:]
        for (i, name) in names.enumerated() {
            hosts[name] = Host(namespace: "usp-bk\(tag)-\(name)", address: "10.77.\(i + 1).2", serverAddress: "10.77.\(i + 1).1")
        }
        let net = Network(server: server, hosts: hosts, ip: ip)
        net.tearDown()
        func must(_ arguments: [String]) throws {
            let r = try Harness.run(ip, arguments)
            guard r.status == 0 else { throw HarnessError("ip \(arguments.joined(separator: " ")): \(r.stderr)") }
        }
        try must(["netns", "add", server])
        try must(["-n", server, "link", "set", "lo", "up"])
        for (i, name) in names.enumerated() {
            let host = hosts[name]!
            let (outer, inner) = ("ubk\(tag % 1000)s\(i)", "ubk\(tag % 1000)h\(i)")
            try must(["netns", "add", host.namespace])
            try must(["-n", host.namespace, "link", "set", "lo", "up"])
            try must(["-n", server, "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", host.namespace])
            try must(["-n", server, "addr", "add", "\(host.serverAddress)/24", "dev", outer])
            try must(["-n", server, "link", "set", outer, "up"])
            try must(["-n", host.namespace, "addr", "add", "\(host.address)/24", "dev", inner])
            try must(["-n", host.namespace, "link", "set", inner, "up"])
        }
        return net
    }

    @Test func aBrokeredTokenWorksOnlyFromItsAddressAndDiesWithTheBrokersLogin() throws {
        guard let net = try Self.network(["broker", "beneficiary", "other"]) else { return }
        defer { net.tearDown() }
        let uspd = try Harness.executable("uspd"), usp = try Harness.executable("usp")
        let data = try Harness.temporaryDirectory("broker-data")
        var homes: [String: String] = [:]
        for name in ["broker", "beneficiary", "other", "eve"] {
            let h = try Harness.temporaryDirectory("broker-home-\(name)")
            chmod(h.path, 0o700)
            homes[name] = h.path
        }
        #expect(try Harness.run(uspd, ["init", "--data-dir", data.path]).status == 0)
        // The rule names a group; its networks hold the beneficiary and the fourth host alike,
        // so that only the token's binding keeps the fourth host out.
        try """
            listen = ["0.0.0.0:7300"]

            [[broker]]
            who = ["group:relays"]
            clients = ["10.77.0.0/16"]
            tokens_per_minute = 20
            token_lifetime = 300

            """.write(to: data.appendingPathComponent("uspd.toml"), atomically: true, encoding: .utf8)
        #expect(try Harness.run(uspd, ["user", "add", "relay", "--group", "relays", "--password-stdin", "--data-dir", data.path], stdin: "relay-pw-1\n").status == 0)
        #expect(try Harness.run(uspd, ["user", "add", "eve", "--password-stdin", "--data-dir", data.path], stdin: "eve-pw-1\n").status == 0)
        let key = try Harness.run(uspd, ["uri", "--data-dir", data.path]).stdout
            .split(separator: "\n").first.map(String.init)?.dropFirst("usp://".count).split(separator: "@").first.map(String.init) ?? ""
        func uri(_ host: String) -> String { "usp://\(key)@\(net.hosts[host]!.serverAddress):7300" }

        let daemon = try RunningProcess("uspd", executable: net.ip, arguments: ["netns", "exec", net.server, uspd, "serve", "--data-dir", data.path])
        defer { daemon.stop() }
        _ = try daemon.waitForOutput { $0.contains("usp://") }
        let beneficiary = net.hosts["beneficiary"]!.address

        // The broker logs in from its own host and brokers "whoami" for the beneficiary.
        let relayPassword = data.appendingPathComponent("relay-pw").path, evePassword = data.appendingPathComponent("eve-pw").path
        try "relay-pw-1\n".write(toFile: relayPassword, atomically: true, encoding: .utf8)
        try "eve-pw-1\n".write(toFile: evePassword, atomically: true, encoding: .utf8)
        let login = try net.run("broker", [usp, "login", "--home", homes["broker"]!, uri("broker"), "--user", "relay", "--password-file", relayPassword])
        #expect(login.status == 0, "\(login.stderr)")
        // Written to a file only its owner may read, as JSON; the beneficiary reads the same file.
        let tokenFile = try Harness.temporaryDirectory("broker-token").appendingPathComponent("token.json").path
        let brokered = try net.run("broker", [usp, "broker", "--home", homes["broker"]!, uri("broker"), "whoami", "--for", beneficiary,
                                              "--json", "--output", tokenFile])
        #expect(brokered.status == 0, "\(brokered.stderr)")
        #expect(brokered.stdout.isEmpty)
        #expect((try FileManager.default.attributesOfItem(atPath: tokenFile)[.posixPermissions] as? Int) == 0o600)
        let answer = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tokenFile))) as? [String: Any] ?? [:]
        let token = answer["token"] as? String ?? ""
        let tokenID = answer["token_id"] as? String ?? ""
        #expect(token.hasPrefix("usp1."))
        #expect(answer["for"] as? String == beneficiary)
        #expect(answer["application"] as? String == "whoami")

        // The beneficiary, with no login, connects with it; the application sees the broker and the address.
        let used = try net.run("beneficiary", [usp, "connect", "--no-agent", "--home", homes["beneficiary"]!, uri("beneficiary"), "whoami",
                                               "--token-file", tokenFile], stdin: "")
        #expect(used.status == 0, "\(used.stderr)")
        #expect(used.stdout.contains("identity=relay address=\(beneficiary) "), "\(used.stdout)")
        #expect(used.stdout.contains("brokered_for=\(beneficiary)"), "\(used.stdout)")

        // The same token from the broker's own address, and from a fourth host, is refused.
        for host in ["broker", "other"] {
            let refused = try net.run(host, [usp, "connect", "--no-agent", "--home", homes[host]!, uri(host), "whoami", "--token", token], stdin: "")
            #expect(refused.status == 1, "\(host): \(refused.stdout)")
            #expect(refused.stderr.contains("refused the token: it was issued to another address"), "\(host): \(refused.stderr)")
            #expect(!refused.stdout.contains("identity="))
        }

        // Outside the rule's networks, and for a user without a rule: refused, with what to do.
        let outside = try net.run("broker", [usp, "broker", "--home", homes["broker"]!, uri("broker"), "whoami", "--for", "192.0.2.7"])
        #expect(outside.status == 1)
        #expect(outside.stderr.contains("does not let this login broker for 192.0.2.7"), "\(outside.stderr)")
        let eveLogin = try net.run("other", [usp, "login", "--home", homes["eve"]!, uri("other"), "--user", "eve", "--password-file", evePassword])
        #expect(eveLogin.status == 0, "\(eveLogin.stderr)")
        let eve = try net.run("other", [usp, "broker", "--home", homes["eve"]!, uri("other"), "whoami", "--for", beneficiary])
        #expect(eve.status == 1)
        #expect(eve.stderr.contains("does not let this login broker connections"), "\(eve.stderr)")
        #expect(eve.stdout.isEmpty)

        // A live brokered stream, then the broker logs out: the stream ends, the token is dead.
        let echoToken = try net.run("broker", [usp, "broker", "--home", homes["broker"]!, uri("broker"), "echo", "--for", beneficiary]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(echoToken.hasPrefix("usp1."))
        let input = Pipe()
        let stream = try RunningProcess("usp connect", executable: net.ip,
                                        arguments: ["netns", "exec", net.hosts["beneficiary"]!.namespace, usp, "connect", "--no-agent",
                                                    "--home", homes["beneficiary"]!, uri("beneficiary"), "echo", "--token", echoToken],
                                        stdin: input.fileHandleForReading)
        defer { stream.stop() }
        try input.fileHandleForReading.close()
        input.fileHandleForWriting.write(Data("before logout\n".utf8))
        _ = try stream.waitForOutput { $0.contains("before logout") }
        let logout = try net.run("broker", [usp, "logout", "--home", homes["broker"]!, uri("broker")])
        #expect(logout.status == 0, "\(logout.stderr)")
        #expect(try stream.wait(timeout: 10) == 1)
        #expect(stream.stderr.contains("token was revoked"), "\(stream.stderr)")
        try? input.fileHandleForWriting.close()
        let again = try net.run("beneficiary", [usp, "connect", "--no-agent", "--home", homes["beneficiary"]!, uri("beneficiary"), "echo", "--token", echoToken],
                                stdin: "after\n")
        #expect(again.status == 1)
        #expect(again.stderr.contains("was revoked; ask whoever gave it to you for a new one"), "\(again.stderr)")
        #expect(!again.stdout.contains("after"))

        // The audit chain: the beneficiary's stream → the brokered token → the broker's login → relay.
        let rows = try Harness.run(uspd, ["audit", "--json", "--data-dir", data.path]).stdout.split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let opened = try #require(rows.first { $0["kind"] as? String == "stream_opened" && $0["token_id"] as? String == tokenID })
        #expect(opened["peer_address"] as? String == beneficiary)
        #expect(opened["identity"] as? String == "relay")
        #expect((opened["detail"] as? String ?? "").contains("brokered by relay for \(beneficiary)"))
        let session = opened["session"] as? String ?? "", streamNumber = opened["stream"] as? Int ?? -1
        let chainRun = try Harness.run(uspd, ["audit", "chain", session, "\(streamNumber)", "--json", "--data-dir", data.path])
        #expect(chainRun.status == 0, "\(chainRun.stderr)")
        let chain = try JSONSerialization.jsonObject(with: Data(chainRun.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(chain["identity"] as? String == "relay")
        let issued = chain["application_token"] as? [String: Any] ?? [:]
        #expect(issued["token_id"] as? String == tokenID)
        #expect(issued["peer_address"] as? String == net.hosts["broker"]!.address, "the token was asked for from the broker's host")
        #expect((issued["detail"] as? String ?? "").contains("brokered for \(beneficiary)"))
        let loginIssued = chain["authorization_token"] as? [String: Any] ?? [:]
        #expect(loginIssued["token_id"] as? String == issued["authorization_token_id"] as? String)
        #expect(loginIssued["token_id"] != nil)
        let authentication = chain["authentication"] as? [String: Any] ?? [:]
        #expect(authentication["identity"] as? String == "relay")
        #expect(authentication["peer_address"] as? String == net.hosts["broker"]!.address)
        #expect(authentication["method"] as? String == "password")
        let text = try Harness.run(uspd, ["audit", "chain", session, "\(streamNumber)", "--data-dir", data.path]).stdout
        #expect(text.contains("brokered for \(beneficiary)"), "\(text)")
        #expect(try Harness.run(uspd, ["audit", "chain", session, "999", "--data-dir", data.path]).status != 0)
    }
}
