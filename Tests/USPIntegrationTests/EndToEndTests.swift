import Foundation
import Testing

/// USP end to end with real processes on loopback: uspd, usp, OpenSSH's ssh and sshd, curl and an
/// HTTP server.
@Suite(.serialized) struct EndToEndTests {
    @Test func sshThroughProxyCommandOnlyAfterLogin() throws {
        guard SSHDPeer.sshdPath != nil else {
            if Harness.strict { Issue.record("sshd is not installed (apt-get install openssh-server)") } else { print("SKIP: sshd not installed") }
            return
        }
        let sshd = try SSHDPeer()
        let daemon = try DaemonFixture(apps: ["ssh.toml": tcpApp("ssh", port: sshd.port, visibility: "authenticated")])
        let usp = try Harness.executable("usp")
        let proxy = "\(usp) --home \(daemon.home.path) connect \(daemon.uri) ssh"

        // Before login: not on the menu, cannot be opened, ssh fails.
        let menu = try daemon.usp(["menu", daemon.uri, "--json"])
        #expect(menu.status == 0)
        #expect(!menu.stdout.contains("\"ssh\""))
        let refused = try daemon.usp(["connect", daemon.uri, "ssh"], stdin: "")
        #expect(refused.status == 1)
        #expect(refused.stderr.hasPrefix("usp: "))
        let before = try Harness.run("/usr/bin/ssh", sshd.sshArguments(proxyCommand: proxy, command: "echo reached"), stdin: "", timeout: 60)
        #expect(before.status != 0)
        #expect(!before.stdout.contains("reached"))

        // After login: listed, and ssh logs in to the real sshd through USP.
        try daemon.loginAdmin()
        let after = try daemon.usp(["menu", daemon.uri, "--json"])
        #expect(after.stdout.contains("\"ssh\""))
        let ssh = try Harness.run("/usr/bin/ssh", sshd.sshArguments(proxyCommand: proxy, command: "echo reached-$((6*7))"), stdin: "", timeout: 60)
        #expect(ssh.status == 0, "ssh failed: \(ssh.stderr)")
        #expect(ssh.stdout.contains("reached-42"))
    }

    @Test func curlThroughForward() throws {
        let web = try HTTPPeer()
        let daemon = try DaemonFixture(apps: ["web.toml": tcpApp("web", port: web.port, visibility: "public")])
        let (forward, local) = try daemon.forward("web")
        defer { forward.stop() }
        for _ in 0..<2 {
            let curl = try Harness.run("/usr/bin/curl", ["-sS", "--max-time", "20", "http://127.0.0.1:\(local)/index.html"])
            #expect(curl.status == 0, "curl: \(curl.stderr)")
            #expect(curl.stdout == web.body)
        }
    }

    /// A client's Ctrl-C in the middle of output is an ordinary end for the program (it dies of
    /// SIGPIPE or is stopped): no warning, no `application_exited` row.
    @Test func aClientsCtrlCIsNotAnApplicationCrash() throws {
        let daemon = try DaemonFixture(apps: ["yes.toml": execApp("yes", command: ["/usr/bin/yes", "usp"], visibility: "public")])
        let client = try RunningProcess("usp connect yes", executable: try Harness.executable("usp"),
                                        arguments: ["--home", daemon.home.path, "connect", daemon.uri, "yes"])
        _ = try client.waitForOutput { $0.count > 100_000 }
        client.signal(SIGINT)
        _ = try client.wait(timeout: 20)
        Thread.sleep(forTimeInterval: 1.5)
        let log = daemon.process?.stderr ?? ""
        #expect(!log.contains("killed by SIGPIPE"), "\(log.suffix(600))")
        #expect(try daemon.audit().contains { $0["kind"] as? String == "application_exited" } == false)
    }

    /// First contact through `usp connect`, as ssh does it: the fingerprint once, on stderr.
    @Test func firstContactShowsTheFingerprintOnce() throws {
        let daemon = try DaemonFixture(apps: ["cat.toml": execApp("cat", command: ["/bin/cat"], visibility: "public")])
        let home = try Harness.temporaryDirectory("tofu")
        let uri = "usp://127.0.0.1:\(daemon.port)"
        let usp = try Harness.executable("usp")
        let first = try Harness.run(usp, ["--home", home.path, "connect", uri, "cat"], stdin: "one\n")
        #expect(first.status == 0 && first.stdout == "one\n", "\(first.stderr)")
        #expect(first.stderr.contains("added 127.0.0.1:\(daemon.port) (SHA256:") && first.stderr.contains("trusted on first use"), "\(first.stderr)")
        let second = try Harness.run(usp, ["--home", home.path, "connect", uri, "cat"], stdin: "two\n")
        #expect(second.status == 0 && second.stdout == "two\n" && !second.stderr.contains("added"), "\(second.stderr)")
    }

    /// 200 curls, 20 at a time, through one forward: every one succeeds, and all of them are
    /// streams on one USP session (a connection each would meet the per-source handshake rate).
    @Test func twoHundredCurlsTwentyAtATimeOnOneSession() throws {
        let web = try HTTPPeer()
        let daemon = try DaemonFixture(apps: ["web.toml": tcpApp("web", port: web.port, visibility: "public")])
        let (forward, local) = try daemon.forward("web")
        defer { forward.stop() }
        let url = "http://127.0.0.1:\(local)/index.html"
        let started = Date()
        let curl = try Harness.run("/usr/bin/curl", ["--no-progress-meter", "-Z", "--parallel-max", "20", "--max-time", "30",
                                                     "-w", "%{http_code}\n"] + (0..<200).flatMap { _ in [url, "-o", "/dev/null"] }, timeout: 120)
        let seconds = Date().timeIntervalSince(started)
        let codes = curl.stdout.split(separator: "\n")
        #expect(codes.count == 200 && codes.allSatisfy { $0 == "200" }, "\(codes.filter { $0 != "200" }.count) failed: \(curl.stderr)\n\(forward.stderr)")
        let audit = try daemon.audit()
        let streams = audit.filter { $0["kind"] as? String == "stream_opened" && $0["application"] as? String == "web" }
        let sessions = Set(streams.compactMap { $0["session"] as? String })
        #expect(streams.count >= 200, "one stream per local connection")
        #expect(sessions.count == 1, "one session for every local connection: \(sessions.count)")
        print(String(format: "200 curls, 20 at a time, through usp forward: %.2f s (%.0f requests/s), %d session(s)", seconds, 200 / seconds, sessions.count))
    }

    /// A local program that sends everything at once, before its stream can be open (more than
    /// the forward holds before pausing the connection), and then half-closes: every byte arrives,
    /// and the reply comes back. Twice, so that one of them takes the token fetched ahead.
    @Test func aForwardTakesABulkUploadSentBeforeItsStreamIsOpen() throws {
        let daemon = try DaemonFixture(apps: ["count.toml": execApp("count", command: ["/usr/bin/wc", "-c"], visibility: "public")])
        let (forward, local) = try daemon.forward("count")
        defer { forward.stop() }
        let upload = """
            import socket, sys
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
            s.sendall(b"\\0" * 8_000_000)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(20)
            reply = b""
            while True:
                chunk = s.recv(100)
                if not chunk:
                    break
                reply += chunk
            print(reply.decode().strip())
            """
        for _ in 0..<2 {
            let r = try Harness.run("/usr/bin/python3", ["-c", upload, "\(local)"], timeout: 40)
            #expect(r.status == 0 && r.stdout == "8000000\n", "\(r.stdout) \(r.stderr) \(forward.stderr)")
        }
    }

    @Test func execApplicationGetsOneProcessPerSession() throws {
        let daemon = try DaemonFixture(apps: ["pid.toml": execApp("pid", command: ["/bin/sh", "-c", "echo pid=$$; exec cat"], visibility: "public")])
        let usp = try Harness.executable("usp")
        var clients: [(RunningProcess, Pipe)] = []
        for i in 0..<2 {
            let input = Pipe()
            let p = try RunningProcess("client\(i)", executable: usp, arguments: ["--home", daemon.home.path, "connect", daemon.uri, "pid"],
                                       stdin: input.fileHandleForReading)
            try input.fileHandleForReading.close()
            clients.append((p, input))
        }
        // Both sessions are live at once, each with its own process.
        var pids: [String] = []
        for (p, input) in clients {
            input.fileHandleForWriting.write(Data("ping\n".utf8))
            let text = try p.waitForOutput { $0.contains("ping") }
            pids.append(String(text.split(separator: "\n").first { $0.hasPrefix("pid=") } ?? ""))
        }
        #expect(pids.count == 2 && !pids[0].isEmpty && !pids[1].isEmpty)
        #expect(pids[0] != pids[1], "two clients at once must get two processes: \(pids)")
        for (p, input) in clients {
            try input.fileHandleForWriting.close()
            #expect(try p.wait(timeout: 20) == 0)
        }
    }

    @Test func logoutEndsTheOpenStreamAndTheTokenStopsWorking() throws {
        let daemon = try DaemonFixture(apps: ["vault.toml": execApp("vault", command: ["/bin/cat"], visibility: "authenticated")])
        try daemon.loginAdmin()
        let input = Pipe()
        let client = try RunningProcess("vault", executable: try Harness.executable("usp"),
                                        arguments: ["--home", daemon.home.path, "connect", daemon.uri, "vault"], stdin: input.fileHandleForReading)
        try input.fileHandleForReading.close()
        input.fileHandleForWriting.write(Data("secret\n".utf8))
        _ = try client.waitForOutput { $0.contains("secret") }

        let started = Date()
        let logout = try daemon.usp(["logout", daemon.uri])
        #expect(logout.status == 0, "logout: \(logout.stderr)")
        // The open stream ends at once, although its stdin is still open.
        let status = try client.wait(timeout: 10)
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(status != 0 || client.stderr.contains("revoked"), "stream should end with token_revoked: \(client.stderr)")
        try? input.fileHandleForWriting.close()

        let again = try daemon.usp(["connect", daemon.uri, "vault"], stdin: "x\n")
        #expect(again.status == 1)
        #expect(again.stderr.hasPrefix("usp: "))
        #expect(!again.stdout.contains("x"))
        let invalidated = try daemon.audit().filter { $0["kind"] as? String == "token_invalidated" }
        #expect(!invalidated.isEmpty)
    }

    /// `uspd user remove`, a separate process, revokes the user's tokens in the store; the
    /// running daemon notices within about a second and ends the user's open stream.
    @Test func removingAUserEndsTheirOpenStreamOnTheRunningDaemon() throws {
        let daemon = try DaemonFixture(apps: ["vault.toml": execApp("vault", command: ["/bin/cat"], visibility: "authenticated")])
        let uspd = try Harness.executable("uspd")
        let add = try Harness.run(uspd, ["user", "add", "bob", "--password-stdin", "--data-dir", daemon.dataDirectory.path], stdin: "bob-password-1\n")
        #expect(add.status == 0, "\(add.stderr)")
        let bobHome = try Harness.temporaryDirectory("bob")
        let login = try Harness.run(try Harness.executable("usp"), ["--home", bobHome.path, "login", daemon.uri, "--user", "bob"], stdin: "bob-password-1\n")
        #expect(login.status == 0, "\(login.stderr)")
        let input = Pipe()
        let client = try RunningProcess("bob-vault", executable: try Harness.executable("usp"),
                                        arguments: ["--home", bobHome.path, "connect", daemon.uri, "vault"], stdin: input.fileHandleForReading)
        try input.fileHandleForReading.close()
        input.fileHandleForWriting.write(Data("still here\n".utf8))
        _ = try client.waitForOutput { $0.contains("still here") }

        let started = Date()
        let remove = try Harness.run(uspd, ["user", "remove", "bob", "--data-dir", daemon.dataDirectory.path])
        #expect(remove.status == 0, "\(remove.stderr)")
        #expect(remove.stdout.contains("revoked"))
        let status = try client.wait(timeout: 10)
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(status != 0 && client.stderr.contains("revoked"), "stream should end with token_revoked: \(client.stderr)")
        try? input.fileHandleForWriting.close()
        let events = try daemon.audit()
        #expect(events.contains { $0["kind"] as? String == "token_invalidated" && ($0["detail"] as? String)?.contains("administrator") == true })
        #expect(events.contains { $0["kind"] as? String == "stream_closed" && $0["identity"] as? String == "bob" && $0["result"] as? String == "token_revoked" })
    }

    /// A user's existing OpenSSH Ed25519 key: registered from its .pub line, it logs in (method
    /// publickey, a signature over this connection's handshake hash) and opens a secure app.
    @Test func loginWithAnExistingSSHKey() throws {
        let daemon = try DaemonFixture()
        let dir = try Harness.temporaryDirectory("sshkey")
        let key = dir.appendingPathComponent("id_ed25519").path
        let gen = try Harness.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "carol@test", "-f", key])
        guard gen.status == 0 else {
            if Harness.strict { Issue.record("ssh-keygen failed: \(gen.stderr)") } else { print("SKIP: ssh-keygen unavailable") }
            return
        }
        let pub = try String(contentsOfFile: key + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let uspd = try Harness.executable("uspd")
        let add = try Harness.run(uspd, ["user", "add", "carol", "--key", pub, "--data-dir", daemon.dataDirectory.path])
        #expect(add.status == 0, "\(add.stderr)")
        let home = try Harness.temporaryDirectory("carol")
        let usp = try Harness.executable("usp")
        let login = try Harness.run(usp, ["--home", home.path, "login", daemon.uri, "--ssh-key", key])
        #expect(login.status == 0, "\(login.stderr)")
        #expect(login.stdout.contains("as carol") || login.stdout.contains("SSH key"), "\(login.stdout)")
        let who = try Harness.run(usp, ["--home", home.path, "connect", daemon.uri, "whoami"], stdin: "")
        #expect(who.stdout.contains("identity=carol"), "\(who.stderr)")
        let events = try daemon.audit()
        #expect(events.contains { $0["kind"] as? String == "authentication" && $0["method"] as? String == "publickey" && $0["identity"] as? String == "carol" })

        // A key nobody registered, and a passphrase-protected key, each get their own line.
        let other = dir.appendingPathComponent("other").path
        _ = try Harness.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other])
        let stranger = try Harness.run(usp, ["--home", home.path, "login", daemon.uri, "--ssh-key", other])
        #expect(stranger.status == 1)
        #expect(stranger.stderr.hasPrefix("usp: ") && stranger.stderr.contains("does not accept"), "\(stranger.stderr)")
        let locked = dir.appendingPathComponent("locked").path
        _ = try Harness.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "a passphrase", "-f", locked])
        let encrypted = try Harness.run(usp, ["--home", home.path, "login", daemon.uri, "--ssh-key", locked])
        #expect(encrypted.status == 1)
        #expect(encrypted.stderr.contains("passphrase") && encrypted.stderr.contains(locked), "\(encrypted.stderr)")
    }

    @Test func authorizationTokenSurvivesKill9AndAuditShowsTheChain() throws {
        let daemon = try DaemonFixture()
        try daemon.loginAdmin()
        try daemon.crash()
        try daemon.start()
        // whoami is only for logged-in users; the cached token from before the crash still works.
        let who = try daemon.usp(["connect", daemon.uri, "whoami"], stdin: "")
        #expect(who.status == 0, "whoami after restart: \(who.stderr)")
        #expect(who.stdout.contains("identity=admin"))

        // stream → application token → authorization token → identity.
        let events = try daemon.audit()
        let stream = try #require(events.last { $0["kind"] as? String == "stream_opened" && $0["application"] as? String == "whoami" })
        let appToken = try #require(stream["token_id"] as? String)
        let authToken = try #require(stream["authorization_token_id"] as? String)
        let issued = try #require(events.first { $0["kind"] as? String == "token_issued" && $0["token_id"] as? String == appToken })
        #expect(issued["authorization_token_id"] as? String == authToken)
        let login = try #require(events.first { $0["kind"] as? String == "token_issued" && $0["token_id"] as? String == authToken })
        #expect(login["identity"] as? String == "admin")
        #expect(login["method"] as? String == "password")
        #expect(stream["identity"] as? String == "admin")
    }

    /// `usp connect` without fields begins by name: one connection, on which the server issues
    /// the application token (audited like any other) and opens the stream.
    @Test func connectBeginsByNameOnOneConnection() throws {
        let daemon = try DaemonFixture()
        let opened = { (events: [[String: Any]]) in events.filter { $0["kind"] as? String == "connection_opened" }.count }
        let before = opened(try daemon.audit())
        let echo = try daemon.usp(["connect", daemon.uri, "echo"], stdin: "one connection\n")
        #expect(echo.status == 0, "\(echo.stderr)")
        #expect(echo.stdout == "one connection\n")
        let events = try daemon.audit()
        #expect(opened(events) == before + 1)
        let stream = try #require(events.last { $0["kind"] as? String == "stream_opened" && $0["application"] as? String == "echo" })
        let session = try #require(stream["session"] as? String)
        let issued = try #require(events.first { $0["kind"] as? String == "token_issued" && $0["token_id"] as? String == stream["token_id"] as? String })
        #expect(issued["session"] as? String == session)
        #expect(issued["peer_address"] as? String == "127.0.0.1")

        // whoami needs the login: refused before it (one line), served after it, on one connection each.
        let refused = try daemon.usp(["connect", daemon.uri, "whoami"], stdin: "")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("\"whoami\"") && refused.stderr.contains("log in"), "\(refused.stderr)")
        try daemon.loginAdmin()
        let who = try daemon.usp(["connect", daemon.uri, "whoami"], stdin: "")
        #expect(who.stdout.contains("identity=admin"), "\(who.stderr)")
    }

    /// Regular files cannot go into an event loop: `usp connect < file > file` takes the
    /// thread-based bridge, pipes the event-loop one; both carry the same bytes both ways.
    @Test func connectBridgesFilesAndPipesAlike() throws {
        let daemon = try DaemonFixture()
        let dir = daemon.home.deletingLastPathComponent()
        let input = dir.appendingPathComponent("in.bin"), output = dir.appendingPathComponent("out.bin")
        let payload = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) })
        try payload.write(to: input)
        let usp = try Harness.executable("usp")
        let script = "'\(usp)' --home '\(daemon.home.path)' connect '\(daemon.uri)' echo < '\(input.path)' > '\(output.path)'"
        let files = try Harness.run("/bin/sh", ["-c", script])
        #expect(files.status == 0, "\(files.stderr)")
        #expect(try Data(contentsOf: output) == payload)
        let piped = try Harness.run("/bin/sh", ["-c", "cat '\(input.path)' | '\(usp)' --home '\(daemon.home.path)' connect '\(daemon.uri)' echo | cat > '\(output.path)'"])
        #expect(piped.status == 0, "\(piped.stderr)")
        #expect(try Data(contentsOf: output) == payload)
    }

    @Test func badInputsGetSpecificErrorsWhileAnotherClientIsServed() throws {
        let daemon = try DaemonFixture()
        // A client that sends garbage, and one that sends nothing, hold connections open.
        let garbage = try RawConnection(port: daemon.port)
        try garbage.send(Array("GET / HTTP/1.0\r\n\r\n".utf8))
        let silent = try RawConnection(port: daemon.port)

        // Meanwhile a real client is served, and each bad request gets its own error line.
        let menu = try daemon.usp(["menu", daemon.uri])
        #expect(menu.status == 0)
        #expect(menu.stdout.contains("echo"))
        let wrong = try daemon.usp(["login", daemon.uri, "--user", "admin"], stdin: "not-the-password\n")
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("wrong user or password"))
        let unknown = try daemon.usp(["connect", daemon.uri, "nosuch"], stdin: "")
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no application named \"nosuch\""))
        let echo = try daemon.usp(["connect", daemon.uri, "echo"], stdin: "still serving\n")
        #expect(echo.stdout == "still serving\n")

        // The server never answered the garbage or the silence, and closed both at the deadline.
        #expect(try garbage.readUntilClosed(timeout: 10).isEmpty)
        #expect(try silent.readUntilClosed(timeout: 10).isEmpty)
    }
}
