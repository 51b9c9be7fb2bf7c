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

    init?() throws {
        let env = ProcessInfo.processInfo.environment
        guard let base = env["USP_TEST_POSTGRES"], let password = env["USP_TEST_POSTGRES_PASSWORD"],
              let parts = URLComponents(string: base), let host = parts.host, let user = parts.user else {
            if env["USP_REQUIRE_POSTGRES"] == "1" {
                Issue.record("USP_TEST_POSTGRES is not set: eval \"$(bash scripts/test-postgres.sh start)\"")
            } else {
                print("SKIP: fleet tests need PostgreSQL (eval \"$(bash scripts/test-postgres.sh start)\")")
            }
            return nil
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

    /// Two nodes on `db`, the second with the first's key.
    static func nodes(_ db: FleetDatabase) throws -> (DaemonFixture, DaemonFixture) {
        let a = try DaemonFixture(apps: apps, database: db.url, environment: db.environment)
        let b = try DaemonFixture(apps: apps, database: db.url, environment: db.environment, sameKeyAs: a)
        return (a, b)
    }

    /// The client's saved login for `from` also used for `to`, as for nodes behind one name.
    static func shareLogin(_ client: DaemonFixture, from: DaemonFixture, to: DaemonFixture) throws {
        let tokens = client.home.appendingPathComponent("tokens")
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
        let listed = try a.uspd(["user", "list"])
        #expect(listed.stdout.contains("carol"), "\(listed.stdout)")
        // Both nodes' sessions are in the one audit trail.
        let sessions = Set(try a.audit().compactMap { $0["session"] as? String })
        #expect(sessions.count >= 2)
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
