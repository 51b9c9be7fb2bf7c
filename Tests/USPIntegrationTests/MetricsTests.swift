import Foundation
import Testing

/// uspd's Prometheus endpoint (`metrics_listen`), scraped with curl while real clients log in,
/// fail to, open a stream and send garbage.
@Suite struct MetricsTests {
    /// `name{labels} value` lines of a scrape, by `name{labels}`.
    func samples(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            out[String(line[..<space])] = value
        }
        return out
    }

    func scrape(_ port: Int, _ extra: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        try Harness.run("/usr/bin/curl", ["-sS", "--max-time", "10"] + extra + ["http://127.0.0.1:\(port)/metrics"])
    }

    @Test func aScrapeCountsLoginsStreamsHandshakesAndShowsWhatIsLive() throws {
        let metricsPort = try Harness.freePort()
        let daemon = try DaemonFixture(apps: ["cat.toml": execApp("cat", command: ["/bin/cat"], visibility: "authenticated")],
                                       config: "handshake_timeout = 1\nmetrics_listen = \"127.0.0.1:\(metricsPort)\"\n")
        #expect(daemon.process?.stderr.contains("metrics on http://127.0.0.1:\(metricsPort)/metrics") == true)
        let wrong = try daemon.usp(["login", daemon.uri, "--user", "admin"], stdin: "not the password\n")
        #expect(wrong.status != 0)
        try daemon.loginAdmin()
        // A stranger's garbage: a connection that ends without a handshake.
        let garbage = try Harness.run("/bin/sh", ["-c", "head -c 1024 /dev/urandom | timeout 5 /usr/bin/curl -s --max-time 3 -T - telnet://127.0.0.1:\(daemon.port) >/dev/null; true"])
        _ = garbage
        let input = Pipe()
        let client = try RunningProcess("usp connect cat", executable: try Harness.executable("usp"),
                                        arguments: ["--home", daemon.home.path, "connect", daemon.uri, "cat"], stdin: input.fileHandleForReading)
        defer { client.stop() }
        input.fileHandleForWriting.write(Data("hello\n".utf8))
        _ = try client.waitForOutput { $0.contains("hello") }

        let live = try scrape(metricsPort)
        #expect(live.status == 0, "\(live.stderr)")
        let s = samples(live.stdout)
        #expect(s["usp_logins_total{method=\"password\",result=\"ok\"}"] == 1, "\(live.stdout)")
        #expect(s["usp_logins_total{method=\"password\",result=\"authentication_failed\"}"] == 1, "\(live.stdout)")
        #expect(s["usp_streams_opened_total{application=\"cat\"}"] == 1)
        #expect(s["usp_sessions_live"] == 1 && s["usp_sessions_logged_in"] == 1 && s["usp_streams_open"] == 1, "\(live.stdout)")
        #expect(s["usp_connections_open"] == 1)
        #expect((s["usp_connections_accepted_total"] ?? 0) >= 4)
        #expect(s.contains { $0.key.hasPrefix("usp_handshakes_total{") && $0.key.contains("pattern=\"none\"") }, "\(live.stdout)")
        #expect((s["usp_handshakes_total{result=\"ok\",pattern=\"ik\"}"] ?? 0) + (s["usp_handshakes_total{result=\"ok\",pattern=\"xx\"}"] ?? 0)
                + (s["usp_handshakes_total{result=\"ok\",pattern=\"nk\"}"] ?? 0) >= 3)
        #expect((s["usp_store_sync_seconds_count"] ?? 0) >= 1, "grants were synced")
        #expect(live.stdout.contains("# TYPE usp_logins_total counter"))

        input.fileHandleForWriting.closeFile()
        _ = try client.wait(timeout: 20)
        Thread.sleep(forTimeInterval: 0.5)
        let after = samples(try scrape(metricsPort).stdout)
        #expect(after["usp_sessions_live"] == 0 && after["usp_streams_open"] == 0)
        #expect(after["usp_stream_bytes_total{direction=\"in\"}"] == 6 && after["usp_stream_bytes_total{direction=\"out\"}"] == 6)

        let other = try Harness.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(metricsPort)/"])
        #expect(other.stdout == "404")
        let post = try scrape(metricsPort, ["-X", "POST", "-o", "/dev/null", "-w", "%{http_code}"])
        #expect(post.stdout == "405")
    }

    @Test func aBadMetricsAddressIsRefusedAtTheConfigCheck() throws {
        let dir = try Harness.temporaryDirectory("metrics-config")
        let uspd = try Harness.executable("uspd")
        _ = try Harness.run(uspd, ["init", "--data-dir", dir.path])
        try "metrics_listen = \"localhost\"\n".write(to: dir.appendingPathComponent("uspd.toml"), atomically: true, encoding: .utf8)
        let r = try Harness.run(uspd, ["-t", "--data-dir", dir.path])
        #expect(r.status != 0 && r.stderr.contains("metrics_listen"), "\(r.stderr)")
    }
}
