import Foundation
import Logging
import PostgresNIO
import Testing
import USPTestSupport
@testable import USPStore
@testable import USPStorePostgres

/// The two store backends, so that one suite runs against both with the same expectations.
///
/// PostgreSQL comes from `USP_TEST_POSTGRES` (a `postgresql://USER@HOST:PORT/DB` URL of a role that
/// may create databases; its password in `USP_TEST_POSTGRES_PASSWORD`), which
/// `scripts/test-postgres.sh start` prints. Each test gets a database of its own, dropped at the
/// end. Without the variable the PostgreSQL cases are skipped with a message, unless
/// `USP_REQUIRE_POSTGRES=1` (CI), where that is a failure.
enum StoreBackend: String, CaseIterable, CustomStringConvertible, Sendable {
    case sqlite, postgres
    static let all = allCases
    var description: String { rawValue }

    /// A store under test and what keeps it alive (its directory or database).
    final class Opened: @unchecked Sendable {
        let store: any AdminStore
        let backend: StoreBackend
        let directory: TempDirectory?
        let database: String?
        let location: PostgresLocation?

        init(store: any AdminStore, backend: StoreBackend, directory: TempDirectory? = nil, database: String? = nil, location: PostgresLocation? = nil) {
            self.store = store
            self.backend = backend
            self.directory = directory
            self.database = database
            self.location = location
        }

        /// A second store on the same data: another process, or another node of a fleet.
        /// `node`: the name it writes into audit rows.
        func another(node: String? = nil) throws -> any AdminStore {
            switch backend {
            case .sqlite: return try SQLiteStore(path: directory!.file("usp.sqlite"), node: node)
            case .postgres: return try PostgresStore(location: location!, node: node, connections: 2)
            }
        }

        deinit {
            if let pg = store as? PostgresStore { pg.close() }
            if let database { StoreBackend.dropDatabase(database) }
        }
    }

    /// Opens a fresh, empty store, or returns nil (with a message) when PostgreSQL is not set up.
    /// `node`: the name the store writes into audit rows.
    func open(node: String? = nil) throws -> Opened? {
        switch self {
        case .sqlite:
            let dir = TempDirectory()
            return Opened(store: try SQLiteStore(path: dir.file("usp.sqlite"), node: node), backend: self, directory: dir)
        case .postgres:
            guard let admin = Self.adminLocation() else { return nil }
            let name = "usp_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
            try Self.adminQuery(admin, "CREATE DATABASE \(name)")
            var location = admin
            location.database = String(name)
            return Opened(store: try PostgresStore(location: location, node: node, connections: 2), backend: self, database: String(name),
                          location: location)
        }
    }

    static var strict: Bool { ProcessInfo.processInfo.environment["USP_REQUIRE_POSTGRES"] == "1" }

    /// The server from the environment, or nil after recording why (a failure in strict mode).
    static func adminLocation() -> PostgresLocation? {
        let env = ProcessInfo.processInfo.environment
        guard let url = env["USP_TEST_POSTGRES"] else {
            if strict {
                Issue.record("USP_TEST_POSTGRES is not set: start a server with `eval \"$(bash scripts/test-postgres.sh start)\"`")
            } else {
                print("SKIP: PostgreSQL store tests (set USP_TEST_POSTGRES, see scripts/test-postgres.sh)")
            }
            return nil
        }
        do {
            return try PostgresLocation.parse(url, environment: ["USPD_DATABASE_PASSWORD": env["USP_TEST_POSTGRES_PASSWORD"] ?? ""])
        } catch {
            Issue.record("USP_TEST_POSTGRES: \(error)")
            return nil
        }
    }

    /// Runs one statement on the admin database (CREATE/DROP DATABASE cannot run in a transaction).
    static func adminQuery(_ location: PostgresLocation, _ sql: String) throws {
        let pool = PostgresConnectionPool(location: location, capacity: 1, logger: Logger(label: "test"))
        defer { pool.close() }
        try pool.withConnection { c in _ = try c.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "test")).blockingResult() }
    }

    static func dropDatabase(_ name: String) {
        guard let admin = adminLocation() else { return }
        try? adminQuery(admin, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }
}
