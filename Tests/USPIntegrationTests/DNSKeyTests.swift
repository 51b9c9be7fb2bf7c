import Foundation
import Testing

/// Server keys in DNS with real processes: `uspd dns-records` prints the records, dnsmasq serves
/// them, and `usp connect HOSTNAME APP` (no key, no port) finds the port in SRV and the key in TXT;
/// a key DNS does not list is refused loudly, and `--dns-require-dnssec` refuses answers nobody
/// validated.
@Suite struct DNSKeyTests {
    static let apps = ["echo.toml": execApp("echo", command: ["/bin/cat"], visibility: "public")]

    /// dnsmasq on a free port serving `records` (its --srv-host / --txt-record arguments).
    static func dnsmasq(_ records: [String]) throws -> (RunningProcess, Int)? {
        guard let path = UDPForwardTests.require("/usr/sbin/dnsmasq", package: "dnsmasq-base") else { return nil }
        let port = try Harness.freePort()
        let p = try RunningProcess("dnsmasq", executable: path, arguments: [
            "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--user=\(NSUserName())",
            "--listen-address=127.0.0.1", "--bind-interfaces", "--port=\(port)", "--pid-file=", "--log-facility=-",
        ] + records)
        Thread.sleep(forTimeInterval: 0.3)
        return (p, port)
    }

    /// The records of `uspd dns-records` as dnsmasq arguments.
    static func published(_ daemon: DaemonFixture, host: String, extra: [String] = []) throws -> (lines: [String], arguments: [String]) {
        let r = try Harness.run(try Harness.executable("uspd"), ["dns-records", host, "--data-dir", daemon.dataDirectory.path,
                                                                 "--port", "\(daemon.port)", "--target", "localhost"] + extra)
        try #require(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init).filter { !$0.hasPrefix(";") }
        var arguments: [String] = []
        for line in lines {
            let f = line.split(separator: " ", maxSplits: 4).map(String.init)
            if f[3] == "SRV" {
                let v = f[4].split(separator: " ")
                arguments.append("--srv-host=\(f[0].dropLast()),\(v[3].dropLast()),\(v[2]),\(v[0]),\(v[1])")
            } else {
                arguments.append("--txt-record=\(f[0].dropLast()),\(f[4].dropFirst().dropLast())")
            }
        }
        return (lines, arguments)
    }

    @Test func connectByNameFindsPortAndKeyInDNS() throws {
        let daemon = try DaemonFixture(apps: Self.apps)
        let key = String(daemon.uri.dropFirst("usp://".count).prefix { $0 != "@" })
        let (lines, records) = try Self.published(daemon, host: "uspd.test")
        #expect(lines == ["_usp._tcp.uspd.test. 3600 IN SRV 0 0 \(daemon.port) localhost.",
                          "_usp._tcp.uspd.test. 3600 IN TXT \"v=usp1 k=\(key)\""])
        guard let (dns, dnsPort) = try Self.dnsmasq(records) else { return }
        defer { dns.stop() }
        let home = try Harness.temporaryDirectory("dnshome")
        let usp = try Harness.executable("usp")
        let viaDNS = ["--dns-server", "127.0.0.1:\(dnsPort)"]

        let first = try Harness.run(usp, ["--home", home.path, "connect", "uspd.test", "echo"] + viaDNS, stdin: "found by name\n")
        #expect(first.status == 0 && first.stdout == "found by name\n", "\(first.stderr)")
        #expect(first.stderr.contains("added uspd.test:\(daemon.port) (SHA256:") && first.stderr.contains("the key published in DNS"), "\(first.stderr)")
        let known = try String(contentsOf: home.appendingPathComponent("known_servers"), encoding: .utf8)
        #expect(known.contains("uspd.test:\(daemon.port) x25519 \(key)"), "the DNS key is remembered: \(known)")
        // The connection used that key from the first byte (NK: this home has no identity key),
        // not a first contact (XX).
        let patterns = try daemon.audit().filter { $0["kind"] as? String == "connection_closed" }.compactMap { $0["detail"] as? String }
        #expect(patterns.contains("nk") && !patterns.contains("xx"), "\(patterns)")

        // Without DNSSEC, --dns-require-dnssec refuses the same answer and says why.
        let strict = try Harness.run(usp, ["--home", home.path, "connect", "uspd.test", "echo", "--dns-require-dnssec"] + viaDNS, stdin: "x\n")
        #expect(strict.status == 1)
        #expect(strict.stderr.contains("was not validated (no AD bit)"), "\(strict.stderr)")
    }

    @Test func aKeyDNSDoesNotListIsRefusedLoudly() throws {
        let daemon = try DaemonFixture(apps: Self.apps)
        let home = try Harness.temporaryDirectory("dnsmismatch")
        let usp = try Harness.executable("usp")
        // The client knows the real key, in known_servers under the name.
        let withoutKey = "uspd.test:\(daemon.port)"
        let realKey = String(daemon.uri.dropFirst("usp://".count).prefix { $0 != "@" })
        try "\(withoutKey) x25519 \(realKey)\n".write(to: home.appendingPathComponent("known_servers"), atomically: true, encoding: .utf8)
        // DNS now says another key (an attacker's, or a rotation nobody told the client about).
        let other = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"
        guard let (dns, dnsPort) = try Self.dnsmasq(["--txt-record=_usp._tcp.uspd.test,v=usp1 k=\(other)",
                                                      "--srv-host=_usp._tcp.uspd.test,localhost,\(daemon.port)"]) else { return }
        defer { dns.stop() }
        let r = try Harness.run(usp, ["--home", home.path, "connect", withoutKey, "echo", "--dns-server", "127.0.0.1:\(dnsPort)"], stdin: "x\n")
        #expect(r.status == 1)
        #expect(r.stderr.contains("is not among the keys _usp._tcp.uspd.test publishes in DNS"), "\(r.stderr)")
        #expect(r.stderr.contains("usp known-servers remove \(withoutKey)"), "\(r.stderr)")
    }

    /// A signed zone on a real authoritative server (knot, signing automatically) holding what
    /// `uspd dns-records` printed, and a validating resolver (dnsmasq with the zone's DS as trust
    /// anchor) in front: `--dns-require-dnssec` accepts the validated key. With a wrong trust
    /// anchor the resolver refuses (SERVFAIL) and so does the client.
    @Test func aDNSSECValidatedKeyIsAcceptedAndABogusOneRefused() throws {
        guard let knotd = UDPForwardTests.require("/usr/sbin/knotd", package: "knot"),
              let keymgr = UDPForwardTests.require("/usr/sbin/keymgr", package: "knot"),
              let dnsmasq = UDPForwardTests.require("/usr/sbin/dnsmasq", package: "dnsmasq-base") else { return }
        let daemon = try DaemonFixture(apps: Self.apps)
        let dir = try Harness.temporaryDirectory("knot")
        for sub in ["db", "zones", "run"] {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        let (lines, _) = try Self.published(daemon, host: "uspd.usp.test")
        let zone = """
            $ORIGIN usp.test.
            $TTL 300
            @ SOA ns.usp.test. admin.usp.test. 1 3600 600 86400 300
            @ NS ns.usp.test.
            ns A 127.0.0.1
            \(lines.joined(separator: "\n"))

            """
        try zone.write(to: dir.appendingPathComponent("zones/usp.test.zone"), atomically: true, encoding: .utf8)
        let knotPort = try Harness.freePort()
        let conf = dir.appendingPathComponent("knot.conf").path
        try """
            server:
                listen: 127.0.0.1@\(knotPort)
                rundir: \(dir.path)/run
            database:
                storage: \(dir.path)/db
            template:
              - id: default
                storage: \(dir.path)/zones
                file: "%s.zone"
                zonefile-sync: -1
                zonefile-load: difference-no-serial
                journal-content: all
            zone:
              - domain: usp.test
                dnssec-signing: on
            log:
              - target: stderr
                any: info

            """.write(toFile: conf, atomically: true, encoding: .utf8)
        let knot = try RunningProcess("knotd", executable: knotd, arguments: ["-c", conf])
        defer { knot.stop() }
        _ = try knot.waitForOutput { $0.contains("DNSSEC, successfully signed") }
        let ds = try Harness.run(keymgr, ["-c", conf, "usp.test", "ds"])
        let dsLines: [[String]] = ds.stdout.split(separator: "\n").map { line in line.split(separator: " ").map(String.init) }
        let sha256: [String] = try #require(dsLines.first { $0.count == 6 && $0[4] == "2" }, "keymgr ds: \(ds.stdout) \(ds.stderr)")
        let anchor = "usp.test,\(sha256[2]),\(sha256[3]),\(sha256[4]),\(sha256[5])"
        // The root's anchor is there because dnsmasq insists on one; nothing here asks the root.
        let rootAnchor = "--trust-anchor=.,20326,8,2,E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"
        func resolver(_ trustAnchor: String) throws -> (RunningProcess, Int) {
            let port = try Harness.freePort()
            let p = try RunningProcess("dnsmasq (validating)", executable: dnsmasq, arguments: [
                "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--user=\(NSUserName())",
                "--listen-address=127.0.0.1", "--bind-interfaces", "--port=\(port)", "--pid-file=", "--log-facility=-",
                "--dnssec", rootAnchor, "--trust-anchor=\(trustAnchor)", "--server=/usp.test/127.0.0.1#\(knotPort)",
            ])
            Thread.sleep(forTimeInterval: 0.3)
            return (p, port)
        }
        let usp = try Harness.executable("usp")
        let home = try Harness.temporaryDirectory("dnssechome")

        let (good, goodPort) = try resolver(anchor)
        defer { good.stop() }
        let ok = try Harness.run(usp, ["--home", home.path, "connect", "uspd.usp.test", "echo", "--dns-require-dnssec",
                                       "--dns-server", "127.0.0.1:\(goodPort)"], stdin: "validated\n")
        #expect(ok.status == 0 && ok.stdout == "validated\n", "\(ok.stderr)\n\(good.stdout)\(good.stderr)")

        // A trust anchor that does not match the zone's key: the resolver finds the answer bogus.
        let wrongDigest = String(sha256[5].reversed())
        let (bogus, bogusPort) = try resolver("usp.test,\(sha256[2]),\(sha256[3]),\(sha256[4]),\(wrongDigest)")
        defer { bogus.stop() }
        let refused = try Harness.run(usp, ["--home", try Harness.temporaryDirectory("bogushome").path, "connect", "uspd.usp.test", "echo",
                                            "--dns-require-dnssec", "--dns-server", "127.0.0.1:\(bogusPort)"], stdin: "x\n")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("SERVFAIL"), "\(refused.stderr)")
    }
}
