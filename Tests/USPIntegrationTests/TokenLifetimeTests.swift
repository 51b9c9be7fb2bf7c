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
}
