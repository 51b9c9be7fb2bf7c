import Foundation
import Testing

/// HOME/config with a real uspd and the real `usp`: every command line names the server by its
/// alias alone.
@Suite(.serialized) struct ClientConfigIntegrationTests {
    @Test func aliasOnlyCommandLines() throws {
        let daemon = try DaemonFixture(apps: ["cat.toml": execApp("cat", command: ["/bin/cat"], visibility: "authenticated")])
        let key = try #require(daemon.uri.split(separator: "@").first?.dropFirst("usp://".count))
        let config = daemon.home.appendingPathComponent("config").path
        try """
            # the 43-character key, typed once
            Host box
                HostName 127.0.0.1
                Port \(daemon.port)
                ServerKey \(key)
                User admin
                Application cat
                UseAgent no
            Host *
                DNS no
            """.write(toFile: config, atomically: true, encoding: .utf8)
        chmod(config, 0o600)
        let server = "127.0.0.1:\(daemon.port)"

        // The application is authenticated: refused before login, through the alias.
        let before = try daemon.usp(["connect", "box"], stdin: "x\n")
        #expect(before.status == 1, "\(before.stderr)")

        // login: server and User from the alias, the password on stdin.
        let login = try daemon.usp(["login", "box"], stdin: daemon.adminPassword + "\n")
        #expect(login.status == 0, "\(login.stderr)")
        #expect(login.stdout.hasPrefix("logged in to \(server) as admin"), "\(login.stdout)")

        // connect: server and Application from the alias.
        let echo = try daemon.usp(["connect", "box"], stdin: "hello through an alias\n")
        #expect(echo.status == 0, "\(echo.stderr)")
        #expect(echo.stdout == "hello through an alias\n")

        // config show: the values and their lines; -o comes before the file.
        let show = try daemon.usp(["config", "show", "box", "--json", "-o", "Anonymous=no"])
        #expect(show.status == 0, "\(show.stderr)")
        let shown = try #require(try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as? [String: Any])
        #expect(shown["uri"] as? String == daemon.uri)
        let settings = try #require(shown["settings"] as? [String: [String: Any]])
        #expect(settings["User"]?["value"] as? String == "admin")
        #expect(settings["User"]?["source"] as? String == "\(config):6")
        #expect(settings["DNS"]?["source"] as? String == "\(config):10")
        #expect(settings["Anonymous"]?["source"] as? String == "command line (-o Anonymous=no)")

        // logins list: the saved login, with the alias that reaches it.
        let list = try daemon.usp(["logins", "list", "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        let logins = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        #expect(logins.count == 1)
        #expect(logins.first?["server"] as? String == server)
        #expect(logins.first?["user"] as? String == "admin")
        #expect(logins.first?["method"] as? String == "password")
        #expect(logins.first?["aliases"] as? [String] == ["box"])

        // logins remove: gone here (and said so), so the application is refused again.
        let remove = try daemon.usp(["logins", "remove", "box"])
        #expect(remove.status == 0, "\(remove.stderr)")
        #expect(remove.stdout.contains("removed the saved login for \(server) (as admin)") && remove.stdout.contains("usp logout"), "\(remove.stdout)")
        let empty = try daemon.usp(["logins", "list", "--json"])
        #expect(empty.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
        let after = try daemon.usp(["connect", "box"], stdin: "x\n")
        #expect(after.status == 1)

        // A config another user could have written is refused, with the fix.
        chmod(config, 0o666)
        let unsafe = try daemon.usp(["connect", "box"], stdin: "x\n")
        #expect(unsafe.status == 1 && unsafe.stderr.contains("chmod 600 \(config)"), "\(unsafe.stderr)")
    }
}
