import Foundation
import Testing

/// A PostgreSQL server of its own (scripts/test-postgres.sh on a free port, in a temporary
/// directory), for a test that stops and starts it: the other tests' server is never touched.
/// Nil (with a message) where the tests have no PostgreSQL; a failure when
/// `USP_REQUIRE_POSTGRES=1`.
final class ThrowawayPostgres {
    let directory: URL
    let port: Int
    /// `postgresql://usp_test@127.0.0.1:PORT/postgres`, a role that may create databases.
    private(set) var server = ""
    private(set) var password = ""

    init?() throws {
        let env = ProcessInfo.processInfo.environment
        guard env["USP_TEST_POSTGRES"] != nil else {
            if env["USP_REQUIRE_POSTGRES"] == "1" {
                Issue.record("USP_TEST_POSTGRES is not set: eval \"$(bash scripts/test-postgres.sh start)\"")
            } else {
                print("SKIP: the database failure tests need PostgreSQL (eval \"$(bash scripts/test-postgres.sh start)\")")
            }
            return nil
        }
        directory = try Harness.temporaryDirectory("pg")
        port = try Harness.freePort()
        let out = try script("start")
        for line in out.split(separator: "\n") where line.hasPrefix("export ") {
            let pair = line.dropFirst("export ".count).split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { continue }
            if pair[0] == "USP_TEST_POSTGRES" { server = pair[1] }
            if pair[0] == "USP_TEST_POSTGRES_PASSWORD" { password = pair[1] }
        }
        guard !server.isEmpty, !password.isEmpty else { throw HarnessError("test-postgres.sh start printed no server: \(out)") }
    }

    /// A fast shutdown (`pg_ctl -m fast`): every connection is ended at once, as in a crash or a
    /// failover, and nothing answers on the port until `start`.
    func stop() throws { _ = try script("stop") }

    func start() throws { _ = try script("start") }

    @discardableResult
    private func script(_ command: String) throws -> String {
        let path = Harness.packageRoot.appendingPathComponent("scripts/test-postgres.sh").path
        let r = try Harness.run("/bin/bash", [path, command, directory.path], environment: ["USP_TEST_POSTGRES_PORT": "\(port)"], timeout: 120)
        guard r.status == 0 else { throw HarnessError("test-postgres.sh \(command) failed (\(r.status)): \(r.stderr)") }
        return r.stdout
    }

    deinit {
        try? stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
