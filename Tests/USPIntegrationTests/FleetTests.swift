import Foundation
import Testing

/// A PostgreSQL database of its own for one test, on the server `scripts/test-postgres.sh` started
/// (`USP_TEST_POSTGRES`, `USP_TEST_POSTGRES_PASSWORD`), dropped at the end. Nil (with a message)
/// when no server is set up; a failure when `USP_REQUIRE_POSTGRES=1`.
final class FleetDatabase {
    let url: String
    let environment: [String: String]
    private let admin: (host: String, port: String, user: String, password: String)
    private let name: String

    convenience init?() throws {
        let env = ProcessInfo.processInfo.environment
        guard let base = env["USP_TEST_POSTGRES"], let password = env["USP_TEST_POSTGRES_PASSWORD"] else {
            if env["USP_REQUIRE_POSTGRES"] == "1" {
                Issue.record("USP_TEST_POSTGRES is not set: eval \"$(bash scripts/test-postgres.sh start)\"")
            } else {
                print("SKIP: fleet tests need PostgreSQL (eval \"$(bash scripts/test-postgres.sh start)\")")
            }
            return nil
        }
        try self.init(server: base, password: password)
    }

    /// A database on the server at `server` (a `postgresql://USER@HOST:PORT/…` URL of a role that
    /// may create databases).
    init(server: String, password: String) throws {
        guard let parts = URLComponents(string: server), let host = parts.host, let user = parts.user else {
            throw HarnessError("not a postgresql:// URL with a user and a host: \(server)")
        }
        admin = (host, String(parts.port ?? 5432), user, password)
        name = "usp_fleet_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
        url = "postgresql://\(user)@\(host):\(admin.port)/\(name)"
        environment = ["USPD_DATABASE_PASSWORD": password]
        try psql("CREATE DATABASE \(name)")
    }

    func psql(_ sql: String) throws {
        let r = try Harness.run("/usr/bin/psql", ["-q", "-h", admin.host, "-p", admin.port, "-U", admin.user, "-d", "postgres", "-c", sql],
                                environment: ["PGPASSWORD": admin.password])
        guard r.status == 0 else { throw HarnessError("psql \(sql): \(r.stderr)") }
    }

    deinit { try? psql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
}

/// Several real uspd processes on one PostgreSQL database, serving one key (docs/FLEET.md): what
/// one node grants or revokes holds on every node.
@Suite(.serialized) struct FleetTests {
    static let apps = ["echo.toml": execApp("echo", command: ["/bin/cat"], visibility: "public")]

    /// Two nodes on `db`, node-a and node-b, the second with the first's key.
    static func nodes(_ db: FleetDatabase) throws -> (DaemonFixture, DaemonFixture) {
        let a = try DaemonFixture(apps: apps, config: config("node-a"), database: db.url, environment: db.environment)
        let b = try DaemonFixture(apps: apps, config: config("node-b"), database: db.url, environment: db.environment, sameKeyAs: a)
        return (a, b)
    }

    /// An echo stream on each node, under the client's login on `a`, each having echoed `first`.
    static func echoStreams(_ a: DaemonFixture, _ b: DaemonFixture, first: String) throws -> (InteractiveClient, InteractiveClient) {
        let onA = try InteractiveClient(a, application: "echo")
        let onB = try InteractiveClient(a, application: "echo", uri: b.uri)
        for stream in [onA, onB] {
            stream.send(first + "\n")
            try stream.waitFor(first)
        }
        return (onA, onB)
    }

    static func config(_ node: String, _ extra: String = "") -> String { "handshake_timeout = 1\nnode_name = \"\(node)\"\n" + extra }

    /// The client's saved login for `from` also used for `to`, as for nodes behind one name.
    static func shareLogin(_ client: DaemonFixture, from: DaemonFixture, to: DaemonFixture) throws {
        let tokens = client.home.appendingPathComponent("tokens")
        try? FileManager.default.removeItem(at: tokens.appendingPathComponent("127.0.0.1_\(to.port).json"))
        try FileManager.default.copyItem(at: tokens.appendingPathComponent("127.0.0.1_\(from.port).json"),
                                         to: tokens.appendingPathComponent("127.0.0.1_\(to.port).json"))
    }

    @Test func aLoginOnOneNodeIsAcceptedOnAnotherAndUsersAreShared() throws {
        guard let db = try FleetDatabase() else { return }
        let (a, b) = try Self.nodes(db)
        #expect(b.uri.hasPrefix(String(a.uri.prefix(while: { $0 != "@" }))), "one server key: \(a.uri) \(b.uri)")
        try a.loginAdmin()
        try Self.shareLogin(a, from: a, to: b)
        let who = try a.usp(["connect", b.uri, "whoami"], stdin: "")
        #expect(who.status == 0 && who.stdout.contains("identity=admin"), "\(who.stdout) \(who.stderr)")
        // A user added through one node exists on the other.
        let added = try b.uspd(["user", "add", "carol", "--password-stdin"], stdin: "carol-secret-1\n")
        #expect(added.status == 0, "\(added.stderr)")
        let users = try a.uspd(["user", "list"])
        #expect(users.stdout.contains("carol"), "\(users.stdout)")
        // Both nodes' sessions are in the one audit trail.
        let sessions = Set(try a.audit().compactMap { $0["session"] as? String })
        #expect(sessions.count >= 2)

        // uspd sessions --fleet on either node lists every node's live sessions.
        let (onA, onB) = try Self.echoStreams(a, b, first: "live")
        var listed: [String: [String]] = [:]
        for _ in 0..<30 where listed["node-a"]?.count != 1 || listed["node-b"]?.count != 1 {
            Thread.sleep(forTimeInterval: 0.2)
            let r = try b.uspd(["sessions", "--fleet", "--json"])
            let answer = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            listed = [:]
            for node in answer?["nodes"] as? [[String: Any]] ?? [] {
                let streams = (node["sessions"] as? [[String: Any]] ?? []).flatMap { $0["streams"] as? [[String: Any]] ?? [] }
                listed[node["node"] as? String ?? "?"] = streams.compactMap { $0["application"] as? String }
            }
        }
        #expect(listed == ["node-a": ["echo"], "node-b": ["echo"]])
        let table = try a.uspd(["sessions", "--fleet"])
        #expect(table.stdout.hasPrefix("NODE") && table.stdout.contains("node-b") && table.stdout.contains("echo#"), "\(table.stdout)")
        // A node that stops withdraws its report.
        b.process?.stop()
        let after = try a.uspd(["sessions", "--fleet", "--json"])
        #expect(!after.stdout.contains("node-b"), "\(after.stdout)")
        _ = try onA.finish()
        withExtendedLifetime(onB) {}
    }

    /// Brokering in a fleet: a token brokered through node A is honoured at node B, the broker's
    /// tokens per minute are one budget over both nodes, and a logout through B kills the token at A.
    @Test func aBrokeredTokenAndItsBudgetSpanTheFleet() throws {
        guard let db = try FleetDatabase() else { return }
        let rule = "\n[[broker]]\nwho = [\"admin\"]\nclients = [\"127.0.0.0/8\"]\ntokens_per_minute = 2\n"
        let a = try DaemonFixture(apps: Self.apps, config: Self.config("node-a", rule), database: db.url, environment: db.environment)
        let b = try DaemonFixture(apps: Self.apps, config: Self.config("node-b", rule), database: db.url, environment: db.environment, sameKeyAs: a)
        try a.loginAdmin()
        try Self.shareLogin(a, from: a, to: b)
        let brokered = try a.usp(["broker", a.uri, "echo", "--for", "127.0.0.1"])
        #expect(brokered.status == 0, "\(brokered.stderr)")
        let token = brokered.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let beneficiary = try Harness.temporaryDirectory("fleet-beneficiary")
        chmod(beneficiary.path, 0o700)
        func use(_ node: DaemonFixture, _ line: String) throws -> (status: Int32, stdout: String, stderr: String) {
            try Harness.run(try Harness.executable("usp"), ["--home", beneficiary.path, "connect", "--no-agent", node.uri, "echo", "--token", token],
                            stdin: line + "\n")
        }
        let atB = try use(b, "through b")
        #expect(atB.status == 0 && atB.stdout == "through b\n", "\(atB.stdout) \(atB.stderr)")
        // One more through B uses the budget up; the third, through A, is over it.
        #expect(try a.usp(["broker", b.uri, "echo", "--for", "127.0.0.1"]).status == 0)
        let over = try a.usp(["broker", a.uri, "echo", "--for", "127.0.0.1"])
        #expect(over.status == 1)
        #expect(over.stderr.contains("tokens_per_minute = 2"), "\(over.stderr)")
        // The broker logs out through B: the token is dead at A too.
        #expect(try a.usp(["logout", b.uri]).status == 0)
        let afterLogout = try use(a, "after")
        #expect(afterLogout.status == 1)
        #expect(afterLogout.stderr.contains("was revoked"), "\(afterLogout.stderr)")
        let issued = try a.audit().filter { $0["kind"] as? String == "token_issued" && ($0["detail"] as? String ?? "").hasPrefix("brokered for 127.0.0.1") }
        #expect(Set(issued.compactMap { $0["node"] as? String }) == ["node-a", "node-b"])
    }

    /// Each node writes its `node_name` into the one trail, and `uspd audit` on any node shows a
    /// NODE column. A wrong password at node A opens the penalty window that refuses the next
    /// login from the same address at node B (the windows are in the database).
    @Test func theTrailNamesEachNodeAndAWrongPasswordAtOneSlowsTheOther() throws {
        guard let db = try FleetDatabase() else { return }
        let slow = "login_delay_base = 3\nlogin_delay_max = 3\n"
        let a = try DaemonFixture(apps: Self.apps, config: Self.config("node-a", slow), database: db.url, environment: db.environment)
        let b = try DaemonFixture(apps: Self.apps, config: Self.config("node-b", slow), database: db.url, environment: db.environment,
                                  sameKeyAs: a)
        let wrong = try a.usp(["login", a.uri, "--user", "admin"], stdin: "not-the-password\n")
        #expect(wrong.status != 0 && wrong.stderr.contains("wrong user or password"), "\(wrong.stderr)")
        let refused = try a.usp(["login", b.uri, "--user", "admin"], stdin: a.adminPassword + "\n")
        #expect(refused.status != 0 && refused.stderr.contains("rate limiting logins"), "\(refused.stderr)")

        let rows = try a.audit()
        let failed = rows.first { $0["kind"] as? String == "authentication" && $0["result"] as? String == "authentication_failed" }
        let limited = rows.first { $0["kind"] as? String == "authentication" && $0["result"] as? String == "rate_limited" }
        #expect(failed?["node"] as? String == "node-a", "\(String(describing: failed))")
        #expect(limited?["node"] as? String == "node-b", "\(String(describing: limited))")
        let table = try b.uspd(["audit"])
        #expect(table.stdout.split(separator: "\n").first?.contains("NODE") == true && table.stdout.contains("node-a"), "\(table.stdout)")
    }

    /// `usp logout` through node A ends the stream the same login holds on node B, by the push
    /// from the database (LISTEN/NOTIFY), well within a second.
    @Test func aLogoutOnOneNodeEndsTheStreamOnAnother() throws {
        guard let db = try FleetDatabase() else { return }
        let (a, b) = try Self.nodes(db)
        try a.loginAdmin()
        try Self.shareLogin(a, from: a, to: b)
        let stream = try InteractiveClient(a, application: "echo", uri: b.uri)
        stream.send("before\n")
        try stream.waitFor("before")
        let start = Date()
        let out = try a.usp(["logout", a.uri])
        #expect(out.status == 0, "\(out.stderr)")
        let status = try stream.process.wait(timeout: 10)
        let elapsed = Date().timeIntervalSince(start)
        #expect(status != 0)
        #expect(stream.process.stderr.contains("its token was revoked"), "\(stream.process.stderr)")
        #expect(elapsed < 1.0, "the stream on the other node ended \(elapsed) s after the logout began")
    }

    /// `uspd user remove` run against node A ends the user's streams on node B.
    @Test func removingAUserThroughOneNodeEndsTheirStreamsOnAnother() throws {
        guard let db = try FleetDatabase() else { return }
        let (a, b) = try Self.nodes(db)
        try a.loginAdmin()
        try Self.shareLogin(a, from: a, to: b)
        let stream = try InteractiveClient(a, application: "echo", uri: b.uri)
        stream.send("hello\n")
        try stream.waitFor("hello")
        let removed = try a.uspd(["user", "remove", "admin"])
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(try stream.process.wait(timeout: 10) != 0)
        #expect(stream.process.stderr.contains("revoked"), "\(stream.process.stderr)")
    }

    /// The database stopped under load and started again (a server of its own, so that no other
    /// test notices). Established streams keep flowing; a login and a new stream are refused with
    /// `store_unavailable` meanwhile; the nodes reconnect by themselves; a logout made as soon as
    /// the database is back ends the other node's stream even if that node's feed was still
    /// reconnecting (it catches up when it does); and the trail holds every row once, the rows of
    /// the outage included.
    @Test func theDatabaseStoppedAndStartedAgainUnderLoad() throws {
        guard let pg = try ThrowawayPostgres() else { return }
        let db = try FleetDatabase(server: pg.server, password: pg.password)
        let (a, b) = try Self.nodes(db)
        try a.loginAdmin()
        try Self.shareLogin(a, from: a, to: b)
        let (onA, onB) = try Self.echoStreams(a, b, first: "before")

        try pg.stop()
        for i in 1...20 {
            onA.send("during \(i)\n")
            onB.send("during \(i)\n")
        }
        try onA.waitFor("during 20")
        try onB.waitFor("during 20")
        let login = try a.usp(["login", b.uri, "--user", "admin"], stdin: a.adminPassword + "\n")
        #expect(login.status != 0 && login.stderr.contains("cannot reach its database"), "\(login.stderr)")
        let fresh = try a.usp(["connect", a.uri, "echo"], stdin: "x\n")
        #expect(fresh.status != 0 && fresh.stderr.contains("cannot reach its database"), "\(fresh.stderr)")
        onA.send("still\n")
        try onA.waitFor("still")

        try pg.start()
        // As soon as the database answers: the logout (through node A, which reconnects on its
        // first query) must end the stream on node B too.
        var loggedOut = false
        let deadline = Date().addingTimeInterval(15)
        while !loggedOut && Date() < deadline {
            loggedOut = try a.usp(["logout", a.uri]).status == 0
            if !loggedOut { Thread.sleep(forTimeInterval: 0.2) }
        }
        #expect(loggedOut, "usp logout failed for 15 s after the database came back")
        let loggedOutAt = Date()
        #expect(try onB.process.wait(timeout: 15) != 0)
        #expect(onB.process.stderr.contains("revoked"), "\(onB.process.stderr)")
        #expect(Date().timeIntervalSince(loggedOutAt) < 10, "node B ended the stream \(Date().timeIntervalSince(loggedOutAt)) s after the logout")
        #expect(try onA.process.wait(timeout: 15) != 0)

        // Both nodes grant again.
        try a.loginAdmin()
        try Self.shareLogin(a, from: a, to: b)
        let again = try a.usp(["connect", b.uri, "echo"], stdin: "again\n")
        #expect(again.status == 0 && again.stdout.contains("again"), "\(again.stderr)")

        // The trail: each row once (none written twice by a retried commit), and every session
        // that opened also closed, those of the outage included (queued, then written).
        var rows: [[String: Any]] = []
        var unclosed: Set<String> = []
        for _ in 0..<25 {
            rows = try a.audit()
            let opened = Set(rows.filter { $0["kind"] as? String == "connection_opened" }.compactMap { $0["session"] as? String })
            let closed = Set(rows.filter { $0["kind"] as? String == "connection_closed" }.compactMap { $0["session"] as? String })
            unclosed = opened.subtracting(closed)
            if unclosed.isEmpty { break }
        }
        #expect(unclosed.isEmpty, "sessions without their close: \(unclosed)")
        var seen: [String: Int] = [:]
        for row in rows {
            var key = row
            key["id"] = nil
            let text = String(decoding: try JSONSerialization.data(withJSONObject: key, options: [.sortedKeys]), as: UTF8.self)
            seen[text, default: 0] += 1
        }
        let twice = seen.filter { $0.value > 1 }
        #expect(twice.isEmpty, "rows written more than once: \(twice.keys.sorted())")
        let refused = rows.filter { ($0["kind"] as? String) == "connection_closed" && (($0["result"] as? String) ?? "").contains("store_unavailable") }
        #expect(!refused.isEmpty || rows.contains { ($0["result"] as? String) == "store_unavailable" },
                "the outage's refusals are in the trail: \(rows.compactMap { $0["result"] as? String })")
    }

    /// `uspd store migrate` moves a SQLite data directory to PostgreSQL: its users, its saved
    /// logins (the tokens) and its audit trail; uspd then serves from the database and the client's
    /// saved login still works.
    @Test func aSQLiteDataDirectoryMovesToPostgreSQL() throws {
        guard let db = try FleetDatabase() else { return }
        let daemon = try DaemonFixture(apps: Self.apps)
        try daemon.loginAdmin()
        daemon.process?.stop()
        let uspd = try Harness.executable("uspd")
        let migrated = try Harness.run(uspd, ["store", "migrate", "--data-dir", daemon.dataDirectory.path, "--to", db.url], environment: db.environment)
        #expect(migrated.status == 0, "\(migrated.stderr)")
        #expect(migrated.stdout.contains("copied 1 user(s), 1 token(s) and"), "\(migrated.stdout)")
        // Again: the database is no longer empty, and says so.
        let again = try Harness.run(uspd, ["store", "migrate", "--data-dir", daemon.dataDirectory.path, "--to", db.url], environment: db.environment)
        #expect(again.status == 1 && again.stderr.contains("import only into an empty store"), "\(again.stderr)")
        // A password in the URL is refused before anything is tried.
        let leaked = try Harness.run(uspd, ["store", "migrate", "--data-dir", daemon.dataDirectory.path,
                                            "--to", db.url.replacingOccurrences(of: "@", with: ":secret@")])
        #expect(leaked.status == 1 && leaked.stderr.contains("holds a password"), "\(leaked.stderr)")
        #expect(!leaked.stderr.contains("secret"), "the password is not echoed: \(leaked.stderr)")
        // Served from PostgreSQL, the saved login is accepted.
        let serve = try RunningProcess("uspd", executable: uspd,
                                       arguments: ["serve", "--data-dir", daemon.dataDirectory.path, "--listen", "127.0.0.1:\(daemon.port)",
                                                   "--database", db.url], environment: db.environment)
        defer { serve.stop() }
        _ = try serve.waitForOutput { $0.contains("listening on") }
        let who = try daemon.usp(["connect", daemon.uri, "whoami"], stdin: "")
        #expect(who.status == 0 && who.stdout.contains("identity=admin"), "\(who.stdout) \(who.stderr)")
        let audit = try Harness.run(uspd, ["audit", "--data-dir", daemon.dataDirectory.path, "--database", db.url], environment: db.environment)
        #expect(audit.stdout.contains("token_issued"), "the trail came along: \(audit.stdout)")
    }
}
