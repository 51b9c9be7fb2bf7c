import Foundation
import Glibc
import NIOCore
import Testing
import USPCore
import USPTestSupport
@testable import USPClient

/// Starts a test server, runs `body`, stops the server.
func withServer<T>(_ server: TestServer = TestServer(), _ body: (TestServer) async throws -> T) async throws -> T {
    try await server.start()
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

/// Expects `body` to throw a `USPClientError`; returns it.
func expectClientError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> USPClientError? {
    do {
        try await body()
        Issue.record("no error thrown", sourceLocation: sourceLocation)
        return nil
    } catch let e as USPClientError {
        #expect(!e.message.contains("\n"), "error spans lines: \(e.message)", sourceLocation: sourceLocation)
        return e
    } catch {
        Issue.record("not a USPClientError: \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

actor Flag {
    private(set) var value = false
    func set() { value = true }
}

@Suite(.serialized) struct EndToEndTests {
    @Test func firstContactRecordsKeyThenIK() async throws {
        let t = TempHome()
        try await withServer { server in
            let uri = try ServerURI(parsing: server.uri)
            let c1 = try await USPConnection.connect(to: uri, home: t.home)
            #expect(c1.pattern == .xx)
            #expect(c1.recordedServerKey)
            #expect(c1.serverKey == server.publicKey)
            let menu = try await c1.menu()
            #expect(Set(menu.applications.values.map(\.name)) == ["echo", "time", "counter"])
            await c1.close()
            #expect(try t.home.loadKnownServers().verdict(for: uri.hostPort, key: server.publicKey) == .trusted)

            // Second contact: the key is known, so IK (we have no identity yet: NK).
            let c2 = try await USPConnection.connect(to: uri, home: t.home)
            #expect(c2.pattern == .nk)
            #expect(!c2.recordedServerKey)
            await c2.close()
            try t.home.writeIdentity(KeyText.generate())
            let c3 = try await USPConnection.connect(to: uri, home: t.home)
            #expect(c3.pattern == .ik)
            await c3.close()
            var anonymous = USPConnectionOptions()
            anonymous.anonymous = true
            let c4 = try await USPConnection.connect(to: uri, home: t.home, options: anonymous)
            #expect(c4.pattern == .nk)
            await c4.close()
        }
    }

    @Test func ipv6Loopback() async throws {
        let t = TempHome()
        try await withServer(TestServer(host: "::1")) { server in
            let uri = try ServerURI(parsing: server.uri)
            #expect(uri.hostPort == "[::1]:\(server.port)")
            let c = try await USPConnection.connect(to: uri, home: t.home)
            #expect(c.recordedServerKey)
            let token = try await c.requestApplication(name: "echo")
            await c.close()
            #expect(try t.home.loadKnownServers().verdict(for: "[::1]:\(server.port)", key: server.publicKey) == .trusted)
            let stream = try await USPConnection.connectDedicated(to: uri, home: t.home, token: token, initialData: Array("v6".utf8))
            #expect(stream.earlyDataAccepted)
            try await stream.finish()
            #expect(try await stream.inbound.collect() == Array("v6".utf8))
        }
    }

    @Test func pinnedKeyUsesIKWithoutKnownServers() async throws {
        let t = TempHome()
        try t.home.writeIdentity(KeyText.generate())
        try await withServer { server in
            let c = try await USPConnection.connect(to: try ServerURI(parsing: server.pinnedURI), home: t.home)
            #expect(c.pattern == .ik)
            #expect(!c.recordedServerKey)
            await c.close()
            #expect(!FileIO.exists(t.home.knownServersPath))
        }
    }

    @Test func loginWrongPasswordThenRightOne() async throws {
        let t = TempHome()
        try await withServer { server in
            let uri = try ServerURI(parsing: server.uri)
            let c = try await USPConnection.connect(to: uri, home: t.home)
            let e = await expectClientError { _ = try await c.login(user: "alice", password: "wrong") }
            #expect(e?.code == .authenticationFailed)
            #expect(e?.message == "wrong user or password for alice on \(uri.hostPort); check both and run usp login again")
            #expect(try await c.isLoggedIn() == false)
            let token = try await c.login(user: "alice", password: "correct horse")
            #expect(token.hasPrefix("usp1."))
            #expect(try await c.isLoggedIn())
            // The menu after login shows the secure application.
            #expect(try await c.menu().applications.values.contains { $0.name == "ssh" })
            await c.close()

            // A later connection presenting the saved token gets the authenticated menu at once.
            var o = USPConnectionOptions()
            o.authorizationToken = token
            let c2 = try await USPConnection.connect(to: uri, home: t.home, options: o)
            #expect(try await c2.isLoggedIn())
            let sshToken = try await c2.requestApplication(name: "ssh", textFields: ["user": "root"])
            #expect(sshToken.hasPrefix("usp1."))
            await c2.close()
            #expect(await server.onLoop { server.policy.requests.last?.1 == ["user": .string("root")] })
        }
    }

    @Test func loginWithClientKey() async throws {
        let t = TempHome()
        let key = KeyText.generate()
        try t.home.writeIdentity(key)
        let server = TestServer()
        server.policy.authorizedKeys[key.publicKey] = "bob"
        try await withServer(server) { server in
            let uri = try ServerURI(parsing: server.pinnedURI)
            let c = try await USPConnection.connect(to: uri, home: t.home)
            #expect(c.clientKeyProven)
            let token = try await c.loginWithKey()
            #expect(token.hasPrefix("usp1."))
            #expect(await server.onLoop { server.policy.logins } == ["bob"])
            await c.close()

            // An unknown key is refused with a line that says what to do.
            let other = TempHome()
            try other.home.writeIdentity(KeyText.generate())
            let c2 = try await USPConnection.connect(to: uri, home: other.home)
            let e = await expectClientError { _ = try await c2.loginWithKey() }
            #expect(e?.code == .authenticationFailed)
            #expect(e?.message.contains("does not accept this client's key") == true)
            await c2.close()

            // Anonymous (NK) cannot log in with a key.
            var o = USPConnectionOptions()
            o.anonymous = true
            let c3 = try await USPConnection.connect(to: uri, home: t.home, options: o)
            let e3 = await expectClientError { _ = try await c3.loginWithKey() }
            #expect(e3?.message.contains("usp keygen") == true)
            await c3.close()
        }
    }

    @Test func unknownApplicationListsWhatThereIs() async throws {
        let t = TempHome()
        try await withServer { server in
            let c = try await USPConnection.connect(to: try ServerURI(parsing: server.uri), home: t.home)
            let e = await expectClientError { _ = try await c.requestApplication(name: "ssh") }
            #expect(e?.code == .unknownApplication)
            #expect(e?.message.contains("no application named \"ssh\"") == true)
            #expect(e?.message.contains("(available: echo, time, counter)") == true)
            #expect(e?.message.contains("usp login usp://127.0.0.1:\(server.port) --user NAME") == true)
            // Missing required field, checked before anything is sent.
            let e2 = await expectClientError { _ = try await c.requestApplication(name: "counter", textFields: [:]) }
            #expect(e2?.message == "\"counter\" needs field start (integer): add --field start=VALUE")
            // Typed fields reach the server with their JSON types.
            _ = try await c.requestApplication(name: "counter", textFields: ["start": "5", "verbose": "no"])
            #expect(await server.onLoop { server.policy.requests.last?.1 } == ["start": .integer(5), "verbose": .bool(false)])
            // A body the server refuses comes back as a per-index error with the field list.
            let e3 = await expectClientError { _ = try await c.requestApplication(name: "counter", fields: ["start": .string("x")]) }
            #expect(e3?.code == .refused)
            #expect(e3?.message.contains("fields: start (integer), verbose (boolean?)") == true)
            await c.close()
        }
    }

    @Test func openStreamEchoes() async throws {
        let t = TempHome()
        try await withServer { server in
            let c = try await USPConnection.connect(to: try ServerURI(parsing: server.uri), home: t.home)
            let token = try await c.requestApplication(name: "echo")
            let s1 = try await c.openStream(token: token)
            let s2 = try await c.openStream(token: try await c.requestApplication(name: "echo"))
            #expect(s1.id == 1 && s2.id == 2)
            try await s1.write(Array("hello ".utf8))
            try await s2.write(Array("other".utf8))
            try await s1.write(Array("world".utf8))
            try await s1.finish()
            try await s2.finish()
            #expect(String(decoding: try await s1.inbound.collect(), as: UTF8.self) == "hello world")
            #expect(String(decoding: try await s2.inbound.collect(), as: UTF8.self) == "other")
            // Writing after FIN is an error, not a crash or a hang, even while the server's side is open.
            let s3 = try await c.openStream(token: try await c.requestApplication(name: "echo"))
            try await s3.write(Array("abc".utf8))
            try await s3.finish()
            let e = await expectClientError { try await s3.write(Array("late".utf8)) }
            #expect(e?.message.contains("write after finish()") == true)
            #expect(String(decoding: try await s3.inbound.collect(), as: UTF8.self) == "abc")
            await c.close()
        }
    }

    @Test func dedicatedConnectionCarriesTokenAndDataInMessage1() async throws {
        let t = TempHome()
        try await withServer { server in
            let uri = try ServerURI(parsing: server.pinnedURI)
            let c = try await USPConnection.connect(to: uri, home: t.home)
            let token = try await c.requestApplication(name: "echo")
            await c.close()

            let payload = Array("ping over USP".utf8)
            let stream = try await USPConnection.connectDedicated(to: uri, home: t.home, token: token, initialData: payload)
            #expect(stream.earlyDataAccepted)
            try await stream.finish()
            #expect(try await stream.inbound.collect() == payload)
            await stream.waitUntilClosed()
            // The server saw NK (no identity) with early data accepted.
            let last = await server.onLoop { server.handshakes.last.map { "\($0.pattern) \($0.early)" } }
            #expect(last == "nk true")
            #expect(await server.onLoop { server.bytesInMessage1.last } == payload)
        }
    }

    @Test func dedicatedConnectionWithMoreDataThanFitsInMessage1() async throws {
        let t = TempHome()
        try t.home.writeIdentity(KeyText.generate())
        try await withServer { server in
            let uri = try ServerURI(parsing: server.pinnedURI)
            let c = try await USPConnection.connect(to: uri, home: t.home)
            let token = try await c.requestApplication(name: "echo")
            await c.close()
            #expect(USPConnection.earlyDataBudget(.ik) > 200)
            let payload = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let stream = try await USPConnection.connectDedicated(to: uri, home: t.home, token: token, initialData: payload)
            try await stream.finish()
            #expect(try await stream.inbound.collect() == payload)
            // Message 1 was filled exactly: the budget is neither too small nor too large.
            let early = await server.onLoop { server.bytesInMessage1.last }
            #expect(early == Array(payload.prefix(USPConnection.earlyDataBudget(.ik))))
        }
    }

    @Test func refusedApplicationTokenOnDedicatedConnection() async throws {
        let t = TempHome()
        try await withServer { server in
            let uri = try ServerURI(parsing: server.pinnedURI)
            let forged = TokenProof.issue(random: SystemRandomSource()).secret
            let e = await expectClientError {
                _ = try await USPConnection.connectDedicated(to: uri, home: t.home, token: forged, initialData: Array("x".utf8))
            }
            #expect(e?.code == .refused)
            #expect(e?.wireCode == .tokenInvalid)
            #expect(e?.message.contains("request a new one") == true)
        }
    }

    @Test func eightMebibyteEchoRespectsFlowControl() async throws {
        let t = TempHome()
        try await withServer { server in
            let c = try await USPConnection.connect(to: try ServerURI(parsing: server.pinnedURI), home: t.home)
            let stream = try await c.openStream(token: try await c.requestApplication(name: "echo"))
            let total = 8 << 20
            var data = [UInt8](repeating: 0, count: total)
            for i in 0..<total { data[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 13) }
            let expected = data
            async let received: [UInt8] = stream.inbound.collect()
            // Write in 100 KiB pieces while the reader drains: each write waits for credit.
            var offset = 0
            while offset < total {
                let end = min(total, offset + 100 * 1024)
                try await stream.write(data[offset..<end])
                offset = end
            }
            try await stream.finish()
            let echoed = try await received
            #expect(echoed.count == total)
            #expect(echoed == expected)
            await c.close()
        }
    }

    @Test func slowReaderIsPausedNotBuffered() async throws {
        // The reader takes nothing: the server may send at most one window, then must wait.
        let t = TempHome()
        try await withServer { server in
            let c = try await USPConnection.connect(to: try ServerURI(parsing: server.pinnedURI), home: t.home)
            let stream = try await c.openStream(token: try await c.requestApplication(name: "echo"))
            let window = Int(SessionConfiguration().streamWindow)
            // 3 windows: the echo can fill our window and the server's; the third write must wait.
            let done = Flag()
            let writer = Task {
                try await stream.write([UInt8](repeating: 1, count: 3 * window + 4096))
                await done.set()
            }
            try await Task.sleep(for: .milliseconds(500))
            #expect(await done.value == false, "the write finished although nobody read the echo")
            let buffered = await server.onLoop { server.connections.values.map { $0.pendingEcho.values.map(\.count).reduce(0, +) }.reduce(0, +) }
            #expect(buffered <= window, "server holds \(buffered) bytes of echo it could not send")
            #expect(buffered > 0)
            // Now read everything: the writer completes.
            var got = 0
            for try await chunk in stream.inbound {
                got += chunk.readableBytes
                if got == 3 * window + 4096 { break }
            }
            try await writer.value
            #expect(got == 3 * window + 4096)
            await c.close()
        }
    }

    @Test func invalidatingTheLoginEndsStreamsAndTheSavedLogin() async throws {
        let t = TempHome()
        try await withServer { server in
            let uri = try ServerURI(parsing: server.pinnedURI)
            let menuConnection = try await USPConnection.connect(to: uri, home: t.home)
            let login = try await menuConnection.login(user: "alice", password: "correct horse")
            let sshToken = try await menuConnection.requestApplication(name: "ssh", textFields: ["user": "alice"])
            let stream = try await USPConnection.connectDedicated(to: uri, home: t.home, token: sshToken, initialData: Array("a".utf8))
            var it = stream.inbound.makeAsyncIterator()
            #expect(try await it.next().map { Array($0.readableBytesView) } == Array("a".utf8))

            #expect(try await menuConnection.invalidate(tokens: [login]) == 1)
            let e = await expectClientError { while try await it.next() != nil {} }
            #expect(e?.code == .streamReset)
            #expect(e?.wireCode == .tokenRevoked)
            await menuConnection.close()

            // The revoked login no longer opens an authenticated menu.
            var o = USPConnectionOptions()
            o.authorizationToken = login
            let e2 = await expectClientError { _ = try await USPConnection.connect(to: uri, home: t.home, options: o) }
            #expect(e2?.code == .loginExpired)
            #expect(e2?.message == "the saved login for \(uri.hostPort) is no longer valid (it was revoked); log in again: usp login usp://\(uri.hostPort) --user NAME")
        }
    }

    @Test func invalidateNeedsLogin() async throws {
        let t = TempHome()
        try await withServer { server in
            let c = try await USPConnection.connect(to: try ServerURI(parsing: server.uri), home: t.home)
            let e = await expectClientError { _ = try await c.invalidate(tokens: ["usp1.AAAA"]) }
            #expect(e?.code == .loginRequired)
            await c.close()
        }
    }

    @Test func changedServerKeyIsRefusedLoudly() async throws {
        let t = TempHome()
        try await withServer { server in
            let uri = try ServerURI(parsing: server.uri)
            let old = KeyText.generate().publicKey
            try t.home.addKnownServer(uri.hostPort, key: old)
            let e = await expectClientError { _ = try await USPConnection.connect(to: uri, home: t.home) }
            #expect(e?.code == .serverKeyChanged)
            #expect(e?.message == "server key for \(uri.hostPort) changed: known \(Fingerprint.of(old)) now \(Fingerprint.of(server.publicKey)); if this is expected, remove the line from \(t.home.knownServersPath) (usp known-servers remove \(uri.hostPort))")
            // Nothing was learned or replaced.
            #expect(try t.home.loadKnownServers().keys(for: uri.hostPort) == [old])
            // The server never saw a completed handshake.
            #expect(await server.onLoop { server.handshakes.count } == 0)
        }
    }

    @Test func wrongPinnedKeyIsNamed() async throws {
        let t = TempHome()
        try await withServer { server in
            let wrong = KeyText.generate().publicKey
            let uri = try ServerURI(parsing: "usp://\(Base64URL.encode(wrong))@127.0.0.1:\(server.port)")
            let e = await expectClientError { _ = try await USPConnection.connect(to: uri, home: t.home) }
            #expect(e?.code == .serverKeyMismatch)
            #expect(e?.message.contains("expected \(Fingerprint.of(wrong)), the server has \(Fingerprint.of(server.publicKey))") == true)
        }
    }

    @Test func stealthServerWithWrongKey() async throws {
        let t = TempHome()
        try await withServer(TestServer(allowFirstContact: false)) { server in
            let wrong = KeyText.generate().publicKey
            let uri = try ServerURI(parsing: "usp://\(Base64URL.encode(wrong))@127.0.0.1:\(server.port)")
            let e = await expectClientError { _ = try await USPConnection.connect(to: uri, home: t.home) }
            #expect(e?.code == .handshakeRejected)
            #expect(e?.message.hasPrefix("server at 127.0.0.1:\(server.port) did not accept our handshake: it closed the connection without answering") == true)
            #expect(e?.message.contains("handshake rate limit") == true && e?.message.contains("key in the URI or known_servers is wrong") == true,
                    "every likely cause is named: \(e?.message ?? "")")
        }
    }

    @Test func revokedAndStrict() async throws {
        try await withServer { server in
            let uri = try ServerURI(parsing: server.uri)
            let t = TempHome()
            t.write("known_servers", "@revoked * x25519 \(Base64URL.encode(server.publicKey))\n")
            let e = await expectClientError { _ = try await USPConnection.connect(to: uri, home: t.home) }
            #expect(e?.code == .serverKeyRevoked)
            #expect(e?.message.contains("@revoked") == true)

            let strict = TempHome()
            var o = USPConnectionOptions()
            o.serverKeyChecking = .strict
            let e2 = await expectClientError { _ = try await USPConnection.connect(to: uri, home: strict.home, options: o) }
            #expect(e2?.code == .unknownServer)
            #expect(e2?.message.contains(Fingerprint.of(server.publicKey)) == true)
            #expect(!FileIO.exists(strict.home.knownServersPath))
            // Strict with a pinned key is fine.
            let c = try await USPConnection.connect(to: try ServerURI(parsing: server.pinnedURI), home: strict.home, options: o)
            await c.close()
        }
    }

    @Test func unreachableServer() async throws {
        let port = closedLoopbackPort()
        let t = TempHome()
        let e = await expectClientError { _ = try await USPConnection.connect(to: try ServerURI(parsing: "usp://127.0.0.1:\(port)"), home: t.home) }
        #expect(e?.code == .unreachable)
        #expect(e?.message == "cannot reach 127.0.0.1:\(port): connection refused; is uspd running and listening on that port?")
    }
}

/// A loopback port that was just free: bound, read and closed, so nothing listens there.
func closedLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    close(fd)
    return Int(UInt16(bigEndian: addr.sin_port))
}
