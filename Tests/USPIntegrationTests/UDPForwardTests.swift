import Foundation
import Testing

/// UDP applications with real processes: dnsmasq as the DNS server behind uspd (`[launch] udp`),
/// unmodified `dig` in front of `usp forward --udp`; and a burst that overflows a flow's queue.
@Suite struct UDPForwardTests {
    /// A program from Debian's packages: its path, or nil (skipped visibly; a failure in strict mode).
    static func require(_ path: String, package: String) -> String? {
        if FileManager.default.isExecutableFile(atPath: path) { return path }
        if Harness.strict { Issue.record("\(path) is missing: apt-get install \(package)") } else { print("SKIP: \(path) is missing (apt-get install \(package))") }
        return nil
    }

    static func udpApp(_ name: String, port: Int) -> String {
        """
        name = "\(name)"
        visibility = "public"

        [launch]
        udp = "127.0.0.1:\(port)"
        """
    }

    @Test func digThroughUSPAgainstARealDNSServer() throws {
        guard let dnsmasq = Self.require("/usr/sbin/dnsmasq", package: "dnsmasq-base"),
              let dig = Self.require("/usr/bin/dig", package: "bind9-dnsutils") else { return }
        let dnsPort = try Harness.freePort()
        let dns = try RunningProcess("dnsmasq", executable: dnsmasq, arguments: [
            "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--user=\(NSUserName())",
            "--listen-address=127.0.0.1", "--bind-interfaces", "--port=\(dnsPort)", "--pid-file=",
            "--address=/svc.usp.test/192.0.2.53", "--txt-record=note.usp.test,over usp", "--log-facility=-",
        ])
        defer { dns.stop() }
        let direct = try Harness.run(dig, ["@127.0.0.1", "-p", "\(dnsPort)", "svc.usp.test", "A", "+short", "+tries=3", "+time=2"], timeout: 20)
        try #require(direct.stdout.contains("192.0.2.53"), "dnsmasq answers directly: \(direct.stdout) \(direct.stderr) \(dns.stderr)")

        let daemon = try DaemonFixture(apps: ["dns.toml": Self.udpApp("dns", port: dnsPort)])
        let (forward, port) = try daemon.forward("dns", udp: true)
        defer { forward.stop() }
        for (name, type, expected) in [("svc.usp.test", "A", "192.0.2.53"), ("note.usp.test", "TXT", "\"over usp\"")] {
            let r = try Harness.run(dig, ["@127.0.0.1", "-p", "\(port)", name, type, "+short", "+tries=1", "+time=5"], timeout: 20)
            #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == expected, "dig \(name) \(type) through usp: \(r.stdout) \(r.stderr)\n\(forward.stderr)")
        }
        // One flow, many queries: dig's batch mode sends them from one socket.
        let batch = String(repeating: "svc.usp.test A +short\n", count: 20)
        let file = try Harness.temporaryDirectory("dig").appendingPathComponent("batch.txt")
        try batch.write(to: file, atomically: true, encoding: .utf8)
        let many = try Harness.run(dig, ["@127.0.0.1", "-p", "\(port)", "+tries=1", "+time=5", "-f", file.path], timeout: 60)
        #expect(many.stdout.components(separatedBy: "192.0.2.53").count - 1 == 20, "\(many.stdout) \(many.stderr)")
        // The flows ran through uspd: its audit shows the udp application's streams.
        let streams = try daemon.audit().filter { $0["kind"] as? String == "stream_opened" && $0["application"] as? String == "dns" }
        #expect(streams.count >= 3, "\(streams.count) dns streams")
    }

    /// A burst far beyond what a flow's queue holds: the excess is dropped, not waited for; what
    /// arrives is intact; the forwarder goes on serving.
    @Test func aBurstOverTheQueueIsDroppedAndTheForwarderGoesOn() throws {
        let python = try HandoffPeers.requirePython()
        let echoPort = try Harness.freePort()
        let echo = try RunningProcess("udp echo", executable: python, arguments: [HandoffPeers.script("udp_echo.py"), "\(echoPort)"])
        defer { echo.stop() }
        _ = try echo.waitForOutput { $0.contains("listening") }
        let daemon = try DaemonFixture(apps: ["echo.toml": Self.udpApp("echo", port: echoPort)])
        let (forward, port) = try daemon.forward("echo", udp: true, extra: ["--udp-queue", "4"])
        defer { forward.stop() }
        let burst = try Harness.run(python, [HandoffPeers.script("udp_burst.py"), "\(port)", "3000", "1200"], timeout: 30)
        let result = try #require(try JSONSerialization.jsonObject(with: Data(burst.stdout.utf8)) as? [String: Int], "\(burst.stdout) \(burst.stderr)")
        #expect(result["sent"] == 3000)
        #expect((result["answered"] ?? 0) > 0 && (result["answered"] ?? 0) < 3000, "some dropped, some through: \(result)")
        #expect(result["intact"] == result["answered"], "whatever arrives is whole: \(result)")
        // Afterwards a new flow still works at once.
        let again = try Harness.run(python, [HandoffPeers.script("udp_burst.py"), "\(port)", "3", "100"], timeout: 30)
        #expect(again.stdout.contains("\"answered\": 3"), "\(again.stdout) \(forward.stderr)")
    }
}
