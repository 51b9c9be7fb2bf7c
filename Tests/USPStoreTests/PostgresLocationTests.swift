import Foundation
import Testing
import USPTestSupport
@testable import USPStore
@testable import USPStorePostgres

/// The `postgresql://` URL of `database` / `--database`, and where its password comes from.
@Suite struct PostgresLocationTests {
    static func parse(_ url: String, file: String? = nil, env: [String: String] = [:]) throws(StoreError) -> PostgresLocation {
        try PostgresLocation.parse(url, passwordFile: file, environment: env)
    }

    @Test func tcpSocketAndTLSForms() throws {
        let a = try Self.parse("postgresql://uspd@db.example.net/usp")
        #expect(a.endpoint == .tcp(host: "db.example.net", port: 5432) && a.user == "uspd" && a.database == "usp" && a.tls == .disable)
        let b = try Self.parse("postgres://uspd@[2001:db8::5]:6432/usp?sslmode=verify-full")
        #expect(b.endpoint == .tcp(host: "2001:db8::5", port: 6432) && b.tls == .verifyFull)
        #expect(b.displayURL == "postgresql://uspd@[2001:db8::5]:6432/usp?sslmode=verify-full")
        let c = try Self.parse("postgresql://uspd@/usp?host=/var/run/postgresql&port=5433")
        #expect(c.endpoint == .unixSocket(path: "/var/run/postgresql/.s.PGSQL.5433"))
        #expect(c.displayURL == "postgresql://uspd@/usp?host=/var/run/postgresql")
        let d = try Self.parse("postgresql://db.example.net/usp", env: ["PGUSER": "fromenv"])
        #expect(d.user == "fromenv")
    }

    @Test func thePasswordComesFromTheFileThenTheEnvironmentNeverTheURL() throws {
        let dir = TempDirectory()
        let file = dir.write("pw", "s3cret\n")
        #expect(try Self.parse("postgresql://u@h/d", file: file, env: ["USPD_DATABASE_PASSWORD": "other"]).password == "s3cret")
        #expect(try Self.parse("postgresql://u@h/d", env: ["USPD_DATABASE_PASSWORD": "a", "PGPASSWORD": "b"]).password == "a")
        #expect(try Self.parse("postgresql://u@h/d", env: ["PGPASSWORD": "b"]).password == "b")
        #expect(try Self.parse("postgresql://u@h/d").password == nil)
        for url in ["postgresql://u:hunter2@h/d", "postgresql://u@h/d?password=hunter2"] {
            let e = expectStoreError(.invalidArgument) { _ = try Self.parse(url) }
            #expect(e?.message.contains("holds a password") == true, "\(url): \(String(describing: e))")
            #expect(e?.message.contains("hunter2") == false, "the password is not repeated: \(String(describing: e))")
        }
        let twoLines = dir.write("two", "a\nb\n")
        #expect(expectStoreError(.invalidArgument) { _ = try Self.parse("postgresql://u@h/d", file: twoLines) }?.message
                == "the database password file must hold one non-empty line")
        #expect(expectStoreError(.invalidArgument) { _ = try Self.parse("postgresql://u@h/d", file: dir.file("missing")) } != nil)
    }

    @Test func mistakesAreNamed() {
        let cases: [(String, String)] = [
            ("mysql://u@h/d", "does not start with postgresql://"),
            ("postgresql://u@h:99999/d", "port \"99999\" is not 1-65535"),
            ("postgresql://h/d", "names no user"),
            ("postgresql://u@h", "names no database"),
            ("postgresql://u@h/d?sslmode=require", "sslmode \"require\" is not disable or verify-full"),
            ("postgresql://u@h/d?application_name=x", "unknown parameter \"application_name\""),
            ("postgresql://u@/d", "names no host"),
            ("postgresql://u@h/d?host=/run/pg", "names both host h and the socket directory /run/pg"),
        ]
        for (url, message) in cases {
            let e = expectStoreError(.invalidArgument) { _ = try Self.parse(url) }
            #expect(e?.message.contains(message) == true, "\(url): \(String(describing: e))")
        }
    }

    /// What a person reads when the server is not there, refuses the login, or holds someone
    /// else's tables, or a newer USP's schema.
    @Test func openingFailuresAreSpecific() throws {
        // Nothing listens on port 1.
        let down = try PostgresLocation.parse("postgresql://u@127.0.0.1:1/d", environment: [:])
        let e1 = expectStoreError(.io) { _ = try PostgresStore(location: down) }
        #expect(e1?.description.hasPrefix("postgresql://u@127.0.0.1:1/d: migrate the schema: cannot reach the database server") == true, "\(String(describing: e1))")
        guard let opened = try StoreBackend.postgres.open(), var location = opened.location else { return }
        location.password = "wrong"
        let e2 = expectStoreError(.io) { _ = try PostgresStore(location: location) }
        #expect(e2?.message.contains("login refused") == true, "\(String(describing: e2))")
        // A newer USP's migration in the table.
        let pg = try #require(opened.store as? PostgresStore)
        try pg.pool.withConnection { c in _ = try c.query("INSERT INTO usp_schema_migrations VALUES ('v99-future', 0)", logger: pg.logger).blockingResult() }
        let e3 = expectStoreError(.schemaTooNew) { _ = try opened.another() }
        #expect(e3?.message.contains("v99-future") == true, "\(String(describing: e3))")
        // Someone else's tables under USP's names.
        try pg.pool.withConnection { c in
            _ = try c.query("DROP TABLE usp_schema_migrations", logger: pg.logger).blockingResult()
        }
        let e4 = expectStoreError(.foreignDatabase) { _ = try opened.another() }
        #expect(e4?.message.contains("not a USP store") == true, "\(String(describing: e4))")
    }
}
