import Foundation
import Testing

/// `uspd status`, `uspd sessions`, `uspd sessions kill` and `uspd uri` against a real uspd,
/// through its control socket DATA/uspd.sock; and that socket probed as an outsider would.
@Suite(.serialized) struct AdminSocketTests {
    func uspd(_ daemon: DaemonFixture, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try Harness.run(try Harness.executable("uspd"), arguments + ["--data-dir", daemon.dataDirectory.path])
    }

    func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    /// A client that sends one line and then waits with its stream open (its stdin stays open
    /// through `input`), until it is ended.
    func openStream(_ daemon: DaemonFixture, input: Pipe) throws -> RunningProcess {
        let client = try RunningProcess("usp connect cat", executable: try Harness.executable("usp"),
                                        arguments: ["--home", daemon.home.path, "connect", daemon.uri, "cat"], stdin: input.fileHandleForReading)
        input.fileHandleForWriting.write(Data("hello\n".utf8))
        return client
    }

    @Test func statusSessionsAndKillShowAndEndALiveStream() throws {
        let daemon = try DaemonFixture(apps: ["cat.toml": execApp("cat", command: ["/bin/cat"], visibility: "public")])
        try daemon.loginAdmin()
        let input = Pipe()
        let client = try openStream(daemon, input: input)
        defer { client.stop() }
        _ = try client.waitForOutput { $0.contains("hello") }

        let status = try uspd(daemon, ["status", "--json"])
        #expect(status.status == 0, "\(status.stderr)")
        let s = json(status.stdout)
        #expect((s["listening"] as? [String]) == ["127.0.0.1:\(daemon.port)"], "\(status.stdout)")
        #expect((s["uris"] as? [String]) == [daemon.uri])
        let sessionCounts = s["sessions"] as? [String: Any] ?? [:]
        #expect(sessionCounts["live"] as? Int == 1 && sessionCounts["logged_in"] as? Int == 1 && sessionCounts["streams"] as? Int == 1,
                "\(status.stdout)")
        #expect((s["connections"] as? [String: Any])?["open"] as? Int == 1)
        #expect(s["applications"] as? Int ?? 0 >= 1)
        let text = try uspd(daemon, ["status"])
        #expect(text.status == 0 && text.stdout.contains("listening") && text.stdout.contains("127.0.0.1:\(daemon.port)")
                && text.stdout.contains("1 live, 1 logged in"), "\(text.stdout)")

        let listed = try uspd(daemon, ["sessions", "--json"])
        let sessions = json(listed.stdout)["sessions"] as? [[String: Any]] ?? []
        try #require(sessions.count == 1, "\(listed.stdout)")
        let session = sessions[0]
        let id = try #require(session["id"] as? String)
        #expect(session["identity"] as? String == "admin" && session["peer"] as? String == "127.0.0.1" && session["state"] as? String == "established")
        let streams = session["streams"] as? [[String: Any]] ?? []
        #expect(streams.count == 1 && streams.first?["application"] as? String == "cat", "\(listed.stdout)")
        // "hello\n" went to cat and came back.
        #expect(streams.first?["bytes_in"] as? Int == 6 && streams.first?["bytes_out"] as? Int == 6, "\(listed.stdout)")
        #expect(streams.first?["login"] is String, "a logged-in stream names its login token")
        let table = try uspd(daemon, ["sessions"])
        #expect(table.stdout.contains(id) && table.stdout.contains("admin") && table.stdout.contains("cat#1"), "\(table.stdout)")

        let kill = try uspd(daemon, ["sessions", "kill", id])
        #expect(kill.status == 0 && kill.stdout.contains("ended \(id)"), "\(kill.stderr)")
        let exit = try client.wait(timeout: 20)
        #expect(exit != 0)
        #expect(client.stderr.contains("an administrator of") && client.stderr.contains("closed_by_administrator"), "\(client.stderr)")
        let after = json(try uspd(daemon, ["sessions", "--json"]).stdout)["sessions"] as? [[String: Any]]
        #expect(after?.isEmpty == true)

        let row = try daemon.audit().first { $0["kind"] as? String == "session_killed" }
        #expect(row?["session"] as? String == id && row?["identity"] as? String == "admin", "\(String(describing: row))")
        #expect((row?["detail"] as? String)?.contains("by uid 0") == true, "\(String(describing: row))")
        #expect(try daemon.audit().contains { $0["kind"] as? String == "stream_closed" && $0["session"] as? String == id
            && $0["result"] as? String == "closed_by_administrator" })

        let unknown = try uspd(daemon, ["sessions", "kill", "s-nosuchsession"])
        #expect(unknown.status == 1 && unknown.stderr.contains("no live session s-nosuchsession"), "\(unknown.stderr)")
    }

    /// `uspd uri` gives the address uspd is bound to (here `--listen` on a random port), not the
    /// configuration's default; once uspd stops, the socket is gone and status says so.
    @Test func uriIsTheRunningDaemonsAndStatusKnowsWhenItStopped() throws {
        let daemon = try DaemonFixture()
        let uri = try uspd(daemon, ["uri"])
        #expect(uri.status == 0 && uri.stdout == daemon.uri + "\n", "\(uri.stdout) \(uri.stderr)")
        let socket = daemon.dataDirectory.appendingPathComponent("uspd.sock").path
        var info = stat()
        #expect(stat(socket, &info) == 0 && info.st_mode & 0o777 == 0o600, "the control socket is 0600")
        daemon.process?.signal(SIGTERM)
        _ = try daemon.process?.wait(timeout: 30)
        #expect(!FileManager.default.fileExists(atPath: socket), "uspd removes its socket when it stops")
        let status = try uspd(daemon, ["status"])
        #expect(status.status == 1 && status.stderr.contains("no uspd is running on this data directory"), "\(status.stderr)")
    }

    /// The socket as an outsider meets it: another user (even with the file opened up to all),
    /// requests that are not JSON, unknown commands, a line too long, a client that says nothing.
    /// Each gets a specific answer, and uspd goes on answering.
    @Test func theControlSocketRefusesOutsidersAndBadRequests() throws {
        let daemon = try DaemonFixture()
        let socket = daemon.dataDirectory.appendingPathComponent("uspd.sock").path
        try #require(geteuid() == 0, "this test runs as root (as CI does) to act as another user")
        chmod(daemon.dataDirectory.path, 0o711)
        chmod(socket, 0o666)
        let copy = try Harness.copyForAnyone(try Harness.executable("uspd"))
        let outsider = try Harness.run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", copy,
                                                            "status", "--data-dir", daemon.dataDirectory.path])
        #expect(outsider.status == 1 && outsider.stderr.contains("only root and the user uspd runs as (uid 0)"), "\(outsider.stderr)")
        #expect(daemon.process?.stderr.contains("control socket: refused a request from uid 65534") == true)

        let probe = """
            import socket, sys, time
            def ask(data, wait=5):
                s = socket.socket(socket.AF_UNIX); s.settimeout(wait); s.connect(sys.argv[1])
                if data is not None: s.sendall(data)
                out = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk: break
                    out += chunk
                return out.decode().strip()
            print(ask(b"garbage\\n"))
            print(ask(b'{"command":"reboot"}\\n'))
            print(ask(b'{"nocommand":1}\\n'))
            print(ask(b'{"command":"kill"}\\n'))
            print(ask(b"x" * 10000))
            t = time.time(); print(ask(None)); print("silent %.1f" % (time.time() - t))
            print(ask(b'{"command":"status"}\\n'))
            """
        let r = try Harness.run("/usr/bin/python3", ["-c", probe, socket], timeout: 30)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 8, "\(r.stdout) \(r.stderr)")
        #expect(lines[0].contains("\"error\":\"bad_request\"") && lines[0].contains("not JSON"), "\(lines[0])")
        #expect(lines[1].contains("\"error\":\"unknown_command\"") && lines[1].contains("reboot"), "\(lines[1])")
        #expect(lines[2].contains("\"error\":\"bad_request\"") && lines[2].contains("no \\\"command\\\""), "\(lines[2])")
        #expect(lines[3].contains("kill needs"), "\(lines[3])")
        #expect(lines[4].contains("\"error\":\"bad_request\"") && lines[4].contains("longer than 4096 bytes"), "\(lines[4])")
        #expect(lines[5].contains("no request line within"), "\(lines[5])")
        let silent = Double(lines[6].split(separator: " ").last ?? "") ?? 0
        #expect(silent >= 1.5 && silent < 4, "a client that says nothing is cut off after the request timeout: \(lines[6])")
        #expect(lines[7].contains("\"ok\":true") && lines[7].contains("\"listening\""), "uspd still answers: \(lines[7])")
    }
}
