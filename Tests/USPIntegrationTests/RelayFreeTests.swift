import Foundation
import Testing
import USPUnix

/// Relay-free mode with real processes: uspd hands a dedicated connection's TCP socket and its
/// transport keys to a USPApp application and leaves the data path; the proof is that the
/// session keeps working while uspd is stopped with SIGSTOP.
@Suite(.serialized) struct RelayFreeTests {
    static let config = HandoffTests.config

    @Test func applicationServesTheClientWhileUspdIsStopped() throws {
        try HandoffPeers.withUpperAndPy(directory: "relayfree", visibility: "public", upperRelayFree: true,
                                        config: Self.config + "log_level = \"debug\"\n") { daemon, upper in
            let uspd = try #require(daemon.process)
            defer { uspd.signal(SIGCONT) }

            let client = try InteractiveClient(daemon, application: "upper")
            client.send("before the stop\n")
            try client.waitFor("BEFORE THE STOP")
            _ = try upper.waitForOutput { $0.contains("(relay-free)") }
            let handedOff = try #require(try daemon.audit().last { $0["kind"] as? String == "stream_handed_off" })
            #expect(handedOff["application"] as? String == "upper")
            #expect(handedOff["result"] as? String == "handed_off")
            #expect((handedOff["bytes_in"] as? Int ?? 0) > 0, "the client's first bytes were counted up to the hand-off: \(handedOff)")
            // uspd holds no TCP connection to the client any more: only its listener.
            #expect(try Self.tcpSockets(of: uspd.pid) == 1)

            try uspd.suspend()
            client.send("while uspd is stopped\n")
            try client.waitFor("WHILE USPD IS STOPPED")
            let bulk = String(repeating: "0123456789abcdef", count: 4096) + "\n"  // 64 KiB: credit and several records
            client.send(bulk)
            try client.waitFor(bulk.uppercased().dropLast() + "")
            #expect(try client.finish() == 0, "\(client.process.stderr)")
            #expect(client.process.stdout.hasSuffix("bye anonymous: 3 line(s)\n"), "\(client.process.stdout.suffix(200))")
            uspd.signal(SIGCONT)

            // The daemon serves everyone else: a relayed application, and another relay-free session.
            let relayed = try daemon.usp(["connect", daemon.uri, "py"], stdin: "again\n")
            #expect(relayed.status == 0, "\(relayed.stderr)")
            #expect(relayed.stdout.contains("py: again"))
            let second = try daemon.usp(["connect", daemon.uri, "upper"], stdin: "second\n")
            #expect(second.status == 0, "\(second.stderr)")
            #expect(second.stdout.hasSuffix("SECOND\nbye anonymous: 1 line(s)\n"))
            let closed = try daemon.audit().filter { $0["kind"] as? String == "connection_closed" }
            #expect(closed.filter { $0["result"] as? String == "handed_off" }.count == 2)
            #expect(try daemon.audit().filter { $0["kind"] as? String == "stream_handed_off" }.count == 2)
        }
    }

    /// uspd is out of a relay-free session's data path, but not out of its accountability: logging
    /// out (invalidating the login the stream's token was issued under) reaches the application
    /// over the hand-off's control line, which resets the stream with token_revoked.
    @Test func revocationReachesARelayFreeSession() throws {
        let dir = try Harness.temporaryDirectory("relayfree-revoke")
        let upperSocket = dir.appendingPathComponent("upper.sock").path
        let upper = try HandoffPeers.exampleApp(socket: upperSocket)
        defer { upper.stop() }
        let daemon = try DaemonFixture(apps: ["upper.toml": unixApp("upper", socket: upperSocket, visibility: "authenticated", relayFree: true)],
                                       config: Self.config)
        try daemon.loginAdmin()
        let client = try InteractiveClient(daemon, application: "upper")
        client.send("handed over\n")
        try client.waitFor("HANDED OVER")
        _ = try upper.waitForOutput { $0.contains("(relay-free)") }
        #expect(try daemon.audit().contains { $0["kind"] as? String == "stream_handed_off" })

        let started = Date()
        let logout = try daemon.usp(["logout", daemon.uri])
        #expect(logout.status == 0, "logout: \(logout.stderr)")
        let status = try client.process.wait(timeout: 10)
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(status != 0 && client.process.stderr.contains("revoked"), "the relay-free stream should end with token_revoked: \(client.process.stderr)")
    }

    /// `uspd sessions` lists a relay-free session (uspd is out of its data path, so it shows what
    /// it knew at the hand-off), and `uspd sessions kill` ends it over the control line.
    @Test func aRelayFreeSessionIsListedAndCanBeKilled() throws {
        let dir = try Harness.temporaryDirectory("relayfree-kill")
        let upperSocket = dir.appendingPathComponent("upper.sock").path
        let upper = try HandoffPeers.exampleApp(socket: upperSocket)
        defer { upper.stop() }
        let daemon = try DaemonFixture(apps: ["upper.toml": unixApp("upper", socket: upperSocket, visibility: "authenticated", relayFree: true)],
                                       config: Self.config)
        try daemon.loginAdmin()
        let client = try InteractiveClient(daemon, application: "upper")
        client.send("handed over\n")
        try client.waitFor("HANDED OVER")
        _ = try upper.waitForOutput { $0.contains("(relay-free)") }
        let uspd = try Harness.executable("uspd")
        let listed = try Harness.run(uspd, ["sessions", "--json", "--data-dir", daemon.dataDirectory.path])
        let rows = ((try? JSONSerialization.jsonObject(with: Data(listed.stdout.utf8))) as? [String: Any])?["sessions"] as? [[String: Any]] ?? []
        let row = try #require(rows.first { $0["relay_free"] as? Bool == true }, "\(listed.stdout)")
        #expect(row["application"] as? String == "upper" && row["identity"] as? String == "admin" && row["peer"] as? String == "127.0.0.1")
        let id = try #require(row["id"] as? String)
        let kill = try Harness.run(uspd, ["sessions", "kill", id, "--data-dir", daemon.dataDirectory.path])
        #expect(kill.status == 0, "\(kill.stderr)")
        let status = try client.process.wait(timeout: 10)
        #expect(status != 0 && client.process.stderr.contains("closed_by_administrator"), "\(client.process.stderr)")
        #expect(try daemon.audit().contains { $0["kind"] as? String == "session_killed" && $0["session"] as? String == id })
    }

    /// A relay-free session keeps its place under `max_sessions` after the hand-off, until the
    /// application closes its control line at the session's end; that end is audited.
    @Test func aRelayFreeSessionCountsUnderMaxSessionsUntilItEnds() throws {
        let dir = try Harness.temporaryDirectory("relayfree-cap")
        let upperSocket = dir.appendingPathComponent("upper.sock").path
        let upper = try HandoffPeers.exampleApp(socket: upperSocket)
        defer { upper.stop() }
        let daemon = try DaemonFixture(apps: [
            "upper.toml": unixApp("upper", socket: upperSocket, visibility: "public", relayFree: true) + "\n[limits]\nmax_sessions = 1\n",
        ], config: Self.config)
        let first = try InteractiveClient(daemon, application: "upper")
        first.send("holding the place\n")
        try first.waitFor("HOLDING THE PLACE")
        _ = try upper.waitForOutput { $0.contains("(relay-free)") }

        let second = try daemon.usp(["connect", daemon.uri, "upper"], stdin: "x\n")
        #expect(second.status != 0 && second.stderr.contains("application_busy"), "the handed-off session still counts: \(second.stderr)")

        #expect(try first.finish() == 0, "\(first.process.stderr)")
        var third = (status: Int32(-1), stdout: "", stderr: "")
        for _ in 0..<30 {
            third = try daemon.usp(["connect", daemon.uri, "upper"], stdin: "third\n")
            if third.status == 0 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(third.status == 0 && third.stdout.contains("THIRD\n"), "the place is free once the first session ended: \(third.stderr)")
        let ends = try daemon.audit().filter {
            $0["kind"] as? String == "stream_closed" && ($0["detail"] as? String)?.hasPrefix("relay-free session ended") == true
        }
        #expect(ends.count == 2, "both relay-free sessions' ends are audited: \(ends)")
        #expect(ends.first?["application"] as? String == "upper")
        #expect((ends.first?["duration_ms"] as? Int ?? 0) > 0)
    }

    /// A generic application (Python, no relay_free) keeps the relayed path: its session stalls
    /// while uspd is stopped and goes on when it continues.
    @Test func genericApplicationKeepsTheRelayedPath() throws {
        let dir = try Harness.temporaryDirectory("relayed")
        let pySocket = dir.appendingPathComponent("py.sock").path
        let py = try HandoffPeers.pythonApp(socket: pySocket)
        defer { py.stop() }
        let daemon = try DaemonFixture(apps: ["py.toml": unixApp("py", socket: pySocket, visibility: "public")], config: Self.config)
        let uspd = try #require(daemon.process)
        defer { uspd.signal(SIGCONT) }
        let client = try InteractiveClient(daemon, application: "py")
        client.send("one\n")
        try client.waitFor("py: one")
        try uspd.suspend()
        client.send("two\n")
        Thread.sleep(forTimeInterval: 1)
        #expect(!client.process.stdout.contains("py: two"), "uspd relays: nothing passes while it is stopped")
        uspd.signal(SIGCONT)
        try client.waitFor("py: two")
        #expect(try client.finish() == 0)
        #expect(try daemon.audit().contains { $0["kind"] as? String == "stream_handed_off" } == false)
    }

    /// The application closes the control connection or refuses before acknowledging: uspd keeps
    /// the connection and resets the stream with a specific code, and the client does not hang.
    @Test func failedRelayFreeHandoffGivesTheClientASpecificCode() throws {
        let dir = try Harness.temporaryDirectory("relayfree-fail")
        let closing = dir.appendingPathComponent("closing.sock").path
        let refusing = dir.appendingPathComponent("refusing.sock").path
        let upperSocket = dir.appendingPathComponent("upper.sock").path
        let closer = try HandoffPeers.pythonApp(socket: closing, mode: "close")
        defer { closer.stop() }
        let refuser = try HandoffPeers.pythonApp(socket: refusing, mode: "refuse")
        defer { refuser.stop() }
        let upper = try HandoffPeers.exampleApp(socket: upperSocket)
        defer { upper.stop() }
        let daemon = try DaemonFixture(apps: [
            "closing.toml": unixApp("closing", socket: closing, visibility: "public", relayFree: true),
            "refusing.toml": unixApp("refusing", socket: refusing, visibility: "public", relayFree: true),
            "missing.toml": unixApp("missing", socket: dir.appendingPathComponent("missing.sock").path, visibility: "public", relayFree: true),
            "upper.toml": unixApp("upper", socket: upperSocket, visibility: "public", relayFree: true),
        ], config: Self.config)
        let cases: [(app: String, code: String, log: String)] = [
            ("closing", "application_unavailable", "the application closed the connection without accepting"),
            ("refusing", "application_refused", "the application refused: error busy: not today"),
            ("missing", "application_unavailable", "No such file or directory"),
        ]
        for c in cases {
            let started = Date()
            let r = try daemon.usp(["connect", daemon.uri, c.app], stdin: "x\n", timeout: 20)
            #expect(Date().timeIntervalSince(started) < 15, "\(c.app): no hang")
            #expect(r.status != 0)
            #expect(r.stderr.contains("reset the stream: \(c.code)"), "\(c.app): \(r.stderr)")
            let log = try #require(daemon.process).stderr
            #expect(log.contains("\(c.app): hand-off to ") && log.contains(c.log + " (\(c.code))"), "\(c.app): \(log)")
        }
        // Still serving, relay-free too.
        let ok = try daemon.usp(["connect", daemon.uri, "upper"], stdin: "fine\n")
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.hasSuffix("FINE\nbye anonymous: 1 line(s)\n"))
    }

    /// TCP sockets (AF_INET/AF_INET6) open in process `pid`, from /proc/PID/fd and /proc/net/tcp*.
    static func tcpSockets(of pid: Int32) throws -> Int {
        var inodes = Set<String>()
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                if fields.count > 9 { inodes.insert(String(fields[9])) }
            }
        }
        let fdDir = "/proc/\(pid)/fd"
        var count = 0
        for fd in try FileManager.default.contentsOfDirectory(atPath: fdDir) {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDir)/\(fd)"),
                  target.hasPrefix("socket:[") else { continue }
            if inodes.contains(String(target.dropFirst(8).dropLast())) { count += 1 }
        }
        return count
    }
}
