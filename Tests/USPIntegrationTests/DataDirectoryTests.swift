import Foundation
import Testing
import USPCore

/// Where uspd keeps its state: `--data-dir`, else `USPD_DATA_DIR`, else `STATE_DIRECTORY`, else
/// ./usp-data; never the client's `USP_HOME`.
@Suite struct DataDirectoryTests {
    @Test func uspdNeverUsesTheClientsHome() throws {
        let uspd = try Harness.executable("uspd")
        let base = try Harness.temporaryDirectory("homes")
        let client = base.appendingPathComponent("client"), server = base.appendingPathComponent("server")
        let state = base.appendingPathComponent("state")
        let exists = { (url: URL, name: String) in FileManager.default.fileExists(atPath: url.appendingPathComponent(name).path) }

        let first = try Harness.run(uspd, ["init"], environment: ["USP_HOME": client.path, "USPD_DATA_DIR": server.path])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(exists(server, "host_key"))
        #expect(!FileManager.default.fileExists(atPath: client.path), "nothing in the client's home")
        #expect(first.stderr.contains("created user admin with password: ") && first.stderr.contains("next, start it with `uspd serve`, then on a client: usp login usp://")
                && first.stderr.contains("--user admin"), "the first run says what to do next: \(first.stderr)")

        let second = try Harness.run(uspd, ["init"], environment: ["USP_HOME": client.path, "STATE_DIRECTORY": state.path])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(exists(state, "host_key"))
        #expect(!FileManager.default.fileExists(atPath: client.path))

        let uri = try Harness.run(uspd, ["uri"], environment: ["USP_HOME": client.path, "USPD_DATA_DIR": server.path])
        #expect(uri.status == 0 && uri.stdout.hasPrefix("usp://"), "\(uri.stderr)")
        // `uspd key`: the key in the URI, and the fingerprint a client shows on first contact.
        let key = try Harness.run(uspd, ["key", "--data-dir", server.path])
        let lines = key.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 2 && uri.stdout.hasPrefix("usp://\(lines[0])@") && lines[1].hasPrefix("SHA256:"), "\(key.stdout) \(key.stderr)")
    }

    /// One base64url key in 64 begins with "-": `uspd user add NAME --key -...` takes it as the
    /// key, not as an option, and that client then logs in with it.
    @Test func aKeyThatBeginsWithADashIsTakenAsTheKey() throws {
        var pair: KeyPair
        repeat {
            pair = try KeyPair(privateKey: (0..<32).map { _ in UInt8.random(in: 0...255) })
        } while !Base64URL.encode(pair.publicKey).hasPrefix("-")
        let daemon = try DaemonFixture()
        let home = try Harness.temporaryDirectory("dash")
        try (Base64URL.encode(pair.privateKey) + "\n").write(to: home.appendingPathComponent("identity"), atomically: true, encoding: .utf8)
        chmod(home.appendingPathComponent("identity").path, 0o600)
        let add = try Harness.run(try Harness.executable("uspd"), ["user", "add", "dash", "--key", Base64URL.encode(pair.publicKey),
                                                                  "--data-dir", daemon.dataDirectory.path])
        #expect(add.status == 0, "\(add.stderr)")
        let usp = try Harness.executable("usp")
        let login = try Harness.run(usp, ["--home", home.path, "login", daemon.uri, "--key"])
        #expect(login.status == 0, "\(login.stdout) \(login.stderr)")
        let who = try Harness.run(usp, ["--home", home.path, "connect", daemon.uri, "whoami"], stdin: "")
        #expect(who.stdout.contains("identity=dash"), "\(who.stdout) \(who.stderr)")
    }
}

/// What `uspd serve` checks before and while it runs: the ports, the data directory's lock, and
/// that its database is still the file it opened.
@Suite struct SafeStartupTests {
    @Test func aSecondUspdOnTheSameDataDirectoryIsRefused() throws {
        let daemon = try DaemonFixture()
        let other = try Harness.freePort()
        let second = try Harness.run(try Harness.executable("uspd"), ["serve", "--data-dir", daemon.dataDirectory.path, "--listen", "127.0.0.1:\(other)"],
                                     timeout: 20)
        #expect(second.status != 0)
        #expect(second.stderr.contains("another uspd (pid \(daemon.process!.pid)) is serving \(daemon.dataDirectory.path)"), "\(second.stderr)")
    }

    @Test func aPortInUseIsFoundBeforeAnythingIsCreated() throws {
        let daemon = try DaemonFixture()
        let fresh = try Harness.temporaryDirectory("fresh").appendingPathComponent("data")
        let r = try Harness.run(try Harness.executable("uspd"), ["serve", "--data-dir", fresh.path, "--listen", "127.0.0.1:\(daemon.port)"], timeout: 20)
        #expect(r.status != 0)
        #expect(r.stderr.contains("cannot listen on 127.0.0.1:\(daemon.port): the port is in use") && r.stderr.contains("nothing was created"), "\(r.stderr)")
        #expect(!r.stderr.contains("password"), "no admin password was made, so none is shown")
        #expect(!FileManager.default.fileExists(atPath: fresh.path))
    }

    @Test func aDatabaseDeletedUnderARunningUspdStopsIt() throws {
        let daemon = try DaemonFixture()
        let uspd = try #require(daemon.process)
        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.removeItem(at: daemon.dataDirectory.appendingPathComponent("usp.sqlite" + suffix))
        }
        let status = try uspd.wait(timeout: 15)
        #expect(status != 0)
        #expect(uspd.stderr.contains("usp.sqlite was deleted while uspd runs"), "\(uspd.stderr.suffix(400))")
    }
}

/// Logging in again replaces the saved login and revokes the one it replaces.
@Suite struct ReloginTests {
    @Test func aSecondLoginRevokesTheFirst() throws {
        let daemon = try DaemonFixture(apps: ["cat.toml": execApp("cat", command: ["/bin/cat"], visibility: "authenticated")])
        try daemon.loginAdmin()
        let tokens = daemon.home.appendingPathComponent("tokens")
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: tokens.path).first)
        let first = try String(contentsOf: tokens.appendingPathComponent(file), encoding: .utf8)
        let again = try daemon.usp(["login", daemon.uri, "--user", "admin"], stdin: daemon.adminPassword + "\n")
        #expect(again.status == 0 && again.stderr.contains("revoked the previous login"), "\(again.stderr)")
        #expect(try daemon.audit().contains { $0["kind"] as? String == "token_invalidated" })
        // The first login, put back, no longer works: the client is told and forgets it.
        try first.write(to: tokens.appendingPathComponent(file), atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: tokens.appendingPathComponent(file).path)
        let menu = try daemon.usp(["menu", daemon.uri])
        #expect(menu.stdout.contains("not logged in"), "\(menu.stdout) \(menu.stderr)")
    }
}
