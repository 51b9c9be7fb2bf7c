import Foundation
import Testing
import USPUnix

/// Hand-offs with real processes: `exec` with `stream = "fd3"`, `unix` hand-off to a
/// running application (the Swift example on USPApp and a Python one), and the specific errors.
@Suite(.serialized) struct HandoffTests {
    /// Several `usp` runs in quick succession from 127.0.0.1 exceed the default handshake burst of 5.
    static let config = "handshake_timeout = 1\nhandshake_burst = 100\n"

    @Test func fd3ExecApplicationGetsTheVariablesAndTalksThroughFd3Alone() throws {
        let python = try HandoffPeers.requirePython()
        let daemon = try DaemonFixture(apps: ["fd3.toml": execApp("fd3", command: [python, HandoffPeers.script("fd3_app.py")],
                                                                  visibility: "authenticated", stream: "fd3")], config: Self.config)
        try daemon.loginAdmin()
        let r = try daemon.usp(["connect", daemon.uri, "fd3"], stdin: "hello through fd 3\n")
        #expect(r.status == 0, "usp connect: \(r.stderr)")
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let report = try #require(try JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8)) as? [String: String],
                                  "first line is the app's report: \(r.stdout)")
        #expect(report["LISTEN_FDS"] == "1")
        #expect(report["LISTEN_FDNAMES"] == "usp")
        #expect(report["LISTEN_PID"] == report["pid"], "LISTEN_PID must be the application's own pid: \(report)")
        #expect(report["fd3_type"] == "unix-stream")
        #expect(report["USP_APPLICATION"] == "fd3")
        #expect(report["USP_IDENTITY"] == "admin")
        #expect(report["USP_PEER_ADDRESS"] == "127.0.0.1")
        #expect(report["USP_REQUEST_JSON"] == "{}")
        // The session and token IDs are the ones in the audit trail.
        let opened = try #require(try daemon.audit().last { $0["kind"] as? String == "stream_opened" && $0["application"] as? String == "fd3" })
        #expect(report["USP_SESSION"] == opened["session"] as? String)
        #expect(report["USP_TOKEN_ID"] == opened["token_id"] as? String)
        #expect(report["USP_AUTHORIZATION_TOKEN_ID"] == opened["authorization_token_id"] as? String)
        #expect(!(report["USP_AUTHORIZATION_TOKEN_ID"] ?? "").isEmpty)
        // The client's FIN reached the app as end of file on fd 3, and its shutdown(SHUT_WR) ended the stream.
        #expect(lines.dropFirst().first == "got 19 bytes: HELLO THROUGH FD 3\n".dropLast())
    }

    @Test func theExampleApplicationAlsoRunsExecdWithFd3() throws {
        let daemon = try DaemonFixture(apps: ["upper.toml": execApp("upper", command: [try Harness.executable("usp-example-upper")],
                                                                    visibility: "public", stream: "fd3")], config: Self.config)
        let r = try daemon.usp(["connect", daemon.uri, "upper"], stdin: "one\ntwo\n")
        #expect(r.status == 0, "usp connect: \(r.stderr)")
        #expect(r.stdout.hasPrefix("hello anonymous (upper via usp, session "))
        #expect(r.stdout.hasSuffix("ONE\nTWO\nbye anonymous: 2 line(s)\n"), "\(r.stdout)")
    }

    @Test func runningApplicationsServeTwoClientsAtOnceInSwiftAndPython() throws {
        try HandoffPeers.withUpperAndPy(directory: "apps", visibility: "authenticated", pyBody: ["topic": "string?"],
                                        config: Self.config) { daemon, upper in
            try daemon.loginAdmin()

            // Two clients of each application, all four sessions open at the same time. They start one
            // after the other (each once its greeting is in), to stay under the per-address handshake bucket.
            let plan: [(String, [String], String)] = [
                ("upper", [], "LINE 0 FROM CLIENT"), ("upper", [], "LINE 1 FROM CLIENT"),
                ("py", ["topic=first"], "py: line 2 from client"), ("py", ["topic=second"], "py: line 3 from client"),
            ]
            var clients: [InteractiveClient] = []
            for (i, (app, fields, _)) in plan.enumerated() {
                let client = try InteractiveClient(daemon, application: app, fields: fields)
                client.send("line \(i) from client\n")
                try client.waitFor(app == "py" ? "py hello" : "hello")
                clients.append(client)
            }
            for (client, (_, _, expected)) in zip(clients, plan) { try client.waitFor(expected) }
            for client in clients { #expect(try client.finish() == 0, "\(client.process.name): \(client.process.stderr)") }

            let sessions = clients.map { client in
                client.process.stdout.split(separator: "\n").first.map(String.init) ?? ""
            }
            #expect(sessions[0].hasPrefix("hello admin (upper via usp, session "))
            #expect(sessions[0] != sessions[1], "two sessions, two IDs")
            #expect(clients[0].process.stdout.hasSuffix("bye admin: 1 line(s)\n"))
            #expect(sessions[2].hasPrefix("py hello admin app=py session="))
            #expect(sessions[2].hasSuffix(#"request={"topic": "first"}"#))
            #expect(sessions[3].hasSuffix(#"request={"topic": "second"}"#))
            #expect(clients[3].process.stdout.hasSuffix("py bye\n"))
            _ = try upper.waitForOutput { $0.components(separatedBy: "session ").count >= 3 }
        }
    }

    /// 4 MB each way through the relay of a unix hand-off: back-pressure holds and nothing is lost.
    @Test func bulkDataThroughAHandedOffStream() throws {
        let dir = try Harness.temporaryDirectory("bulk")
        let socket = dir.appendingPathComponent("upper.sock").path
        let upper = try HandoffPeers.exampleApp(socket: socket)
        defer { upper.stop() }
        let daemon = try DaemonFixture(apps: ["upper.toml": unixApp("upper", socket: socket, visibility: "public")], config: Self.config)
        let line = String(repeating: "abcdefghij", count: 9) + "\n"
        let count = 4 * 1024 * 1024 / line.utf8.count
        let r = try daemon.usp(["connect", daemon.uri, "upper"], stdin: String(repeating: line, count: count), timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == count + 2)
        #expect(lines.dropFirst().dropLast().allSatisfy { $0 == line.dropLast().uppercased() })
        #expect(lines.last == "bye anonymous: \(count) line(s)")
    }

    @Test func handOffFailuresGetSpecificCodesAndLogLinesWhileOthersAreServed() throws {
        let dir = try Harness.temporaryDirectory("errors")
        let missing = dir.appendingPathComponent("missing.sock").path
        let dead = dir.appendingPathComponent("dead.sock").path
        let closing = dir.appendingPathComponent("closing.sock").path
        let refusing = dir.appendingPathComponent("refusing.sock").path
        let upperSocket = dir.appendingPathComponent("upper.sock").path
        // A socket file nobody listens on any more.
        close(try UnixSocket.listen(at: try UnixSocketAddress(path: dead)))
        let closer = try HandoffPeers.pythonApp(socket: closing, mode: "close")
        defer { closer.stop() }
        let refuser = try HandoffPeers.pythonApp(socket: refusing, mode: "refuse")
        defer { refuser.stop() }
        let upper = try HandoffPeers.exampleApp(socket: upperSocket)
        defer { upper.stop() }
        let daemon = try DaemonFixture(apps: [
            "missing.toml": unixApp("missing", socket: missing, visibility: "public"),
            "dead.toml": unixApp("dead", socket: dead, visibility: "public"),
            "closing.toml": unixApp("closing", socket: closing, visibility: "public"),
            "refusing.toml": unixApp("refusing", socket: refusing, visibility: "public"),
            "upper.toml": unixApp("upper", socket: upperSocket, visibility: "public"),
        ], config: Self.config)
        // A session held open through the whole test shows that the daemon keeps serving.
        let held = try InteractiveClient(daemon, application: "upper")
        held.send("before\n")
        try held.waitFor("BEFORE")

        let cases: [(app: String, code: String, log: String)] = [
            ("missing", "application_unavailable", "missing: hand-off to \(missing): connect \(missing): No such file or directory"),
            ("dead", "application_unavailable", "dead: hand-off to \(dead): connect \(dead): Connection refused"),
            ("closing", "application_unavailable", "closing: hand-off to \(closing): the application closed the connection without accepting"),
            ("refusing", "application_refused", "refusing: hand-off to \(refusing): the application refused: error busy: not today"),
        ]
        for c in cases {
            let r = try daemon.usp(["connect", daemon.uri, c.app], stdin: "x\n")
            #expect(r.status != 0, "\(c.app) should fail")
            #expect(r.stderr.contains("reset the stream: \(c.code)"), "\(c.app): \(r.stderr)")
            #expect(!r.stdout.contains("x"))
            let log = try #require(daemon.process).stderr
            #expect(log.contains(c.log + " (\(c.code))"), "\(c.app): uspd log lacks the line; log:\n\(log)")
        }
        // The audit trail has each stream's code.
        let closed = try daemon.audit().filter { $0["kind"] as? String == "stream_closed" }
        #expect(closed.contains { $0["application"] as? String == "refusing" && $0["result"] as? String == "application_refused" })
        #expect(closed.contains { $0["application"] as? String == "missing" && $0["result"] as? String == "application_unavailable" })

        // Garbage on the USPApp application's socket is refused with a line, and it keeps serving.
        let garbage = try UnixSocket.connect(to: try UnixSocketAddress(path: upperSocket))
        try StreamIO.writeAll(garbage, [0, 0, 0, 5] + Array("{bad}".utf8))
        shutdown(garbage, CInt(SHUT_WR))
        let answer = try StreamIO.readLine(garbage, limit: 1000)
        close(garbage)
        #expect(answer?.hasPrefix("error malformed_metadata") == true, "\(answer ?? "nil")")
        _ = try upper.waitForOutput { $0.contains("hand-off refused: malformed_metadata") }

        let after = try daemon.usp(["connect", daemon.uri, "upper"], stdin: "after\n")
        #expect(after.status == 0, "\(after.stderr)")
        #expect(after.stdout.contains("AFTER\nbye anonymous: 1 line(s)"))
        held.send("still here\n")
        try held.waitFor("STILL HERE")
        #expect(try held.finish() == 0)
        #expect(try #require(daemon.process).isRunning)
    }

    /// uspd's descriptor limit is lowered to what it holds plus two (prlimit): the connection is
    /// accepted, the stream's socketpair is not; the client hears resources_exhausted and, with
    /// the limit back, the next client is served.
    @Test func runningOutOfDescriptorsIsResourcesExhausted() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") else {
            if Harness.strict { Issue.record("prlimit is not installed (util-linux)") } else { print("SKIP: no prlimit") }
            return
        }
        let dir = try Harness.temporaryDirectory("emfile")
        let socket = dir.appendingPathComponent("py.sock").path
        let py = try HandoffPeers.pythonApp(socket: socket)
        defer { py.stop() }
        let daemon = try DaemonFixture(apps: ["py.toml": unixApp("py", socket: socket, visibility: "public")], config: Self.config)
        let pid = try #require(daemon.process).pid
        // Warm up: whatever the daemon opens lazily (database readers) is open now.
        for _ in 0..<2 {
            let warm = try daemon.usp(["connect", daemon.uri, "py"], stdin: "warm\n")
            #expect(warm.status == 0, "\(warm.stderr)")
        }
        Thread.sleep(forTimeInterval: 0.3)
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
        let lowered = try Harness.run("/usr/bin/prlimit", ["--pid", "\(pid)", "--nofile=\(open + 2):\(20000)"])
        #expect(lowered.status == 0, "prlimit: \(lowered.stderr)")
        let starved = try daemon.usp(["connect", daemon.uri, "py"], stdin: "x\n")
        _ = try Harness.run("/usr/bin/prlimit", ["--pid", "\(pid)", "--nofile=20000:20000"])
        #expect(starved.status != 0)
        #expect(starved.stderr.contains("resources_exhausted"), "\(starved.stderr)")
        let log = try #require(daemon.process).stderr
        #expect(log.contains("py: hand-off to \(socket): socketpair: Too many open files (resources_exhausted)"), "\(log)")

        let again = try daemon.usp(["connect", daemon.uri, "py"], stdin: "again\n")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("py: again"))
    }
}
