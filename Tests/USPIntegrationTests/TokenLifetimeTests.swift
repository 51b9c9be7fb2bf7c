import Foundation
import Testing

/// uspd.toml `application_token_lifetime` is the lifetime of an application's tokens unless its
/// file sets `[limits] token_lifetime`; `uspd app list --json` shows what applies.
@Suite struct TokenLifetimeTests {
    @Test func theServerWideDefaultAppliesUnlessTheApplicationSetsItsOwn() throws {
        let dir = try Harness.temporaryDirectory("lifetime")
        let initRun = try Harness.run(try Harness.executable("uspd"), ["init", "--data-dir", dir.path])
        #expect(initRun.status == 0, "\(initRun.stderr)")
        try "application_token_lifetime = 7\n".write(to: dir.appendingPathComponent("uspd.toml"), atomically: true, encoding: .utf8)
        try execApp("plain", command: ["/bin/cat"], visibility: "public")
            .write(to: dir.appendingPathComponent("apps.d/plain.toml"), atomically: true, encoding: .utf8)
        try (execApp("own", command: ["/bin/cat"], visibility: "public") + "\n[limits]\ntoken_lifetime = 30\n")
            .write(to: dir.appendingPathComponent("apps.d/own.toml"), atomically: true, encoding: .utf8)
        let listed = try Harness.run(try Harness.executable("uspd"), ["app", "list", "--json", "--data-dir", dir.path])
        #expect(listed.status == 0, "\(listed.stderr)")
        var lifetimes: [String: Int] = [:]
        for line in listed.stdout.split(separator: "\n") {
            let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            if let name = o["name"] as? String { lifetimes[name] = o["token_lifetime"] as? Int }
        }
        #expect(lifetimes["plain"] == 7, "the uspd.toml default: \(listed.stdout)")
        #expect(lifetimes["own"] == 30, "the application's own: \(listed.stdout)")
    }

    /// A login's expiry ends the streams opened under it (RESET `token_expired`), as its
    /// revocation does, whatever the application tokens' own lifetimes: a stream never outlives
    /// the login that granted it. Also a stream opened with a token brokered under that login.
    @Test func aLoginsExpiryEndsItsStreams() throws {
        let daemon = try DaemonFixture(apps: ["cat.toml": execApp("cat", command: ["/bin/cat"], visibility: "authenticated")],
                                       config: "handshake_timeout = 1\nauthorization_token_lifetime = 4\n")
        try daemon.loginAdmin()
        let loggedInAt = Date()
        let input = Pipe()
        let stream = try RunningProcess("usp connect", executable: try Harness.executable("usp"),
                                        arguments: ["--home", daemon.home.path, "connect", "--no-agent", daemon.uri, "cat"],
                                        stdin: input.fileHandleForReading)
        defer { stream.stop() }
        try input.fileHandleForReading.close()
        input.fileHandleForWriting.write(Data("still here\n".utf8))
        _ = try stream.waitForOutput { $0.contains("still here") }
        #expect(try stream.wait(timeout: 15) == 1)
        let ended = Date().timeIntervalSince(loggedInAt)
        #expect(ended >= 3.5 && ended < 8, "the stream ended \(ended) s after the login (lifetime 4 s)")
        #expect(stream.stderr.contains("the login it was opened under expired"), "\(stream.stderr)")
        try? input.fileHandleForWriting.close()
        let closed = try daemon.audit().filter { $0["kind"] as? String == "stream_closed" && $0["application"] as? String == "cat" }
        #expect(closed.map { $0["result"] as? String } == ["token_expired"])
    }
}
