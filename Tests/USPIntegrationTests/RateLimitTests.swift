import Foundation
import Testing

/// Rate limits with a real uspd: each uspd.toml rate limit refuses with its code, writes a
/// `rate_limited` audit row naming the limit, and leaves other clients served.
@Suite(.serialized) struct RateLimitTests {
    static let base = "handshake_timeout = 2\nhandshake_burst = 100\n"

    static let apps = [
        "cat.toml": execApp("cat", command: ["/bin/cat"], visibility: "authenticated"),
        "pub.toml": execApp("pub", command: ["/bin/cat"], visibility: "public"),
    ]

    /// `usp connect` from a home of its own: not logged in, so anonymous (counted by source address).
    static func anonymous(_ daemon: DaemonFixture, _ application: String, stdin: String) throws -> (status: Int32, stdout: String, stderr: String) {
        let home = try Harness.temporaryDirectory("anon")
        return try Harness.run(try Harness.executable("usp"), ["--home", home.path, "connect", daemon.uri, application], stdin: stdin)
    }

    static func refusals(_ daemon: DaemonFixture) throws -> [[String: Any]] {
        try daemon.audit().filter { $0["kind"] as? String == "rate_limited" }
    }

    @Test func concurrentStreamsPerIdentity() throws {
        let daemon = try DaemonFixture(apps: Self.apps, config: Self.base + "max_streams_per_identity = 1\n")
        try daemon.loginAdmin()
        let held = try InteractiveClient(daemon, application: "cat")
        held.send("one\n")
        try held.waitFor("one")

        let second = try daemon.usp(["connect", daemon.uri, "cat"], stdin: "two\n")
        #expect(second.status != 0)
        #expect(second.stderr.contains("reset the stream: too_many_streams"), "\(second.stderr)")
        // An anonymous client is another caller: served.
        let stranger = try Self.anonymous(daemon, "pub", stdin: "from a stranger\n")
        #expect(stranger.status == 0 && stranger.stdout == "from a stranger\n", "\(stranger.stderr)")

        let refusal = try #require(try Self.refusals(daemon).last)
        #expect(refusal["result"] as? String == "too_many_streams")
        #expect(refusal["detail"] as? String == "max_streams_per_identity (1) reached by admin")
        #expect(refusal["identity"] as? String == "admin")
        #expect(refusal["application"] as? String == "cat")
        #expect(try #require(daemon.process).stderr.contains("max_streams_per_identity (1) reached by admin (too_many_streams)"))

        held.send("still served\n")
        try held.waitFor("still served")
        #expect(try held.finish() == 0)
        let after = try daemon.usp(["connect", daemon.uri, "cat"], stdin: "three\n")
        #expect(after.status == 0 && after.stdout == "three\n", "the count went down with the stream: \(after.stderr)")
    }

    @Test func streamsPerMinutePerIdentityAndPerAnonymousSource() throws {
        let daemon = try DaemonFixture(apps: Self.apps, config: Self.base + "max_streams_per_minute = 2\n")
        try daemon.loginAdmin()
        for i in 0..<2 {
            let r = try daemon.usp(["connect", daemon.uri, "cat"], stdin: "\(i)\n")
            #expect(r.status == 0, "\(r.stderr)")
        }
        let third = try daemon.usp(["connect", daemon.uri, "cat"], stdin: "too soon\n")
        #expect(third.status != 0)
        #expect(third.stderr.contains("reset the stream: rate_limited"), "\(third.stderr)")
        // Strangers from 127.0.0.1 have their own bucket (two streams), then are refused too.
        for i in 0..<2 {
            let r = try Self.anonymous(daemon, "pub", stdin: "anon \(i)\n")
            #expect(r.status == 0 && r.stdout == "anon \(i)\n", "\(r.stderr)")
        }
        let anonymousThird = try Self.anonymous(daemon, "pub", stdin: "x\n")
        #expect(anonymousThird.stderr.contains("reset the stream: rate_limited"), "\(anonymousThird.stderr)")

        let details = try Self.refusals(daemon).map { ($0["result"] as? String ?? "", $0["detail"] as? String ?? "") }
        #expect(details.contains { $0 == ("rate_limited", "max_streams_per_minute (2) reached by admin") }, "\(details)")
        #expect(details.contains { $0 == ("rate_limited", "max_streams_per_minute (2) reached by anonymous from 127.0.0.1") }, "\(details)")
    }

    @Test func concurrentStreamsPerApplicationFromUspdToml() throws {
        let daemon = try DaemonFixture(apps: Self.apps, config: Self.base + "max_streams_per_application = 1\n")
        let held = try InteractiveClient(daemon, application: "pub")
        held.send("first\n")
        try held.waitFor("first")
        let second = try Self.anonymous(daemon, "pub", stdin: "second\n")
        #expect(second.stderr.contains("reset the stream: application_busy"), "\(second.stderr)")
        try daemon.loginAdmin()
        let other = try daemon.usp(["connect", daemon.uri, "cat"], stdin: "another application\n")
        #expect(other.status == 0 && other.stdout == "another application\n", "\(other.stderr)")
        let refusal = try #require(try Self.refusals(daemon).last)
        #expect(refusal["result"] as? String == "application_busy")
        #expect(refusal["detail"] as? String == "max_streams_per_application (1) of pub reached")
        #expect(try held.finish() == 0)
    }

    @Test func connectionsPerSourceAddress() throws {
        let daemon = try DaemonFixture(apps: Self.apps, config: Self.base + "max_connections_per_source = 1\n")
        let held = try InteractiveClient(daemon, application: "pub")
        held.send("held\n")
        try held.waitFor("held")

        // A second connection from 127.0.0.1 is closed before its handshake, nothing sent.
        let second = try Self.anonymous(daemon, "pub", stdin: "x\n")
        #expect(second.status != 0)
        #expect(!second.stdout.contains("x"))
        let same = try SourceConnection(from: "127.0.0.1", port: daemon.port)
        #expect(same.closedWithin(1.0) == .closed)
        // One from another source address (127.0.0.2) is let in: it waits for its handshake.
        let other = try SourceConnection(from: "127.0.0.2", port: daemon.port)
        #expect(other.closedWithin(0.5) == .open)
        other.close()

        let refusals = try Self.refusals(daemon)
        #expect(refusals.count >= 2)
        #expect(refusals.allSatisfy { $0["result"] as? String == "dropped" && $0["peer_address"] as? String == "127.0.0.1" })
        #expect(refusals.first?["detail"] as? String == "max_connections_per_source (1) reached for 127.0.0.1")
        #expect(try #require(daemon.process).stderr.contains("127.0.0.1: max_connections_per_source (1) reached for 127.0.0.1, connection dropped"))

        held.send("undisturbed\n")
        try held.waitFor("undisturbed")
        #expect(try held.finish() == 0)
        Thread.sleep(forTimeInterval: 0.2)
        let later = try Self.anonymous(daemon, "pub", stdin: "later\n")
        #expect(later.status == 0 && later.stdout == "later\n", "\(later.stderr)")
    }

    /// A logged-in client's address is known: its quick connections (ssh ProxyCommand, git, a
    /// script) are not held to the strangers' handshake rate, while a stranger's still are.
    @Test func aKnownAddressIsNotHeldToTheStrangersHandshakeRate() throws {
        let daemon = try DaemonFixture(apps: Self.apps, config: "handshake_timeout = 2\nhandshake_rate = 1\nhandshake_burst = 3\n")
        // As a stranger, 127.0.0.1 gets its burst of 3 (the fixture's own readiness probe took one):
        // the rest are closed at once.
        let strangers = try (0..<6).map { _ in try SourceConnection(from: "127.0.0.1", port: daemon.port) }
        let states = strangers.map { $0.closedWithin(0.3) }
        strangers.forEach { $0.close() }
        #expect(states.filter { $0 == .closed }.count >= 3, "\(states)")
        Thread.sleep(forTimeInterval: 3.5)
        try daemon.loginAdmin()
        var failures: [String] = []
        for i in 0..<15 {
            let r = try daemon.usp(["connect", daemon.uri, "cat"], stdin: "quick \(i)\n")
            if r.status != 0 || r.stdout != "quick \(i)\n" { failures.append("\(i): \(r.status) \(r.stderr)") }
        }
        #expect(failures.isEmpty, "15 quick connects after a login: \(failures)")
        // Only that address is known: a neighbour is still a stranger.
        let neighbours = try (0..<6).map { _ in try SourceConnection(from: "127.0.0.2", port: daemon.port) }
        let neighbourStates = neighbours.map { $0.closedWithin(0.3) }
        neighbours.forEach { $0.close() }
        #expect(neighbourStates.filter { $0 == .closed }.count >= 3, "\(neighbourStates)")
    }
}

/// A TCP connection to 127.0.0.1:port from a chosen loopback source address.
final class SourceConnection {
    enum State: Equatable { case open, closed }
    let fd: Int32

    init(from source: String, port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = UInt16(port).bigEndian
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) } }
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, size) } }
        guard bound == 0, connected == 0 else { Glibc.close(fd); throw HarnessError("connect from \(source) to 127.0.0.1:\(port) failed") }
    }

    /// `.closed` if the server closes (or resets) within `seconds`, `.open` if it is still waiting.
    func closedWithin(_ seconds: Double) -> State {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? .open : .closed
    }

    private var closed = false
    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }
    deinit { close() }
}
