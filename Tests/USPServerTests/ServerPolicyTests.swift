import Crypto
import Foundation
import Testing
import USPConfig
import USPCore
import USPTestSupport
@testable import USPServer
import USPStore

@Suite("ServerPolicy")
struct ServerPolicyTests {
    @Test func strangersSeePublicApplicationsAndLoginMethods() throws {
        let store = Fixtures.store()
        var pair = MemoryPair(policy: Fixtures.policy(store: store))
        try pair.establish()
        // Public applications first (1…k without gaps), nothing about the hidden ones.
        #expect(pair.log.notes.contains(.menu(["0:password,publickey,noise_static", "echo", "env", "time"])))
        let menu = try #require(pair.log.menus.last)
        #expect(menu.applications.keys.map(\.rawValue).sorted() == [1, 2, 3])
        guard case .methods(let methods)? = menu.authentication else { Issue.record("no methods"); return }
        #expect(methods.first { $0.method == "publickey" }?.expectedRequestBody["signature"] == "string")
    }

    @Test func anonymousClientsAreNotOfferedNoiseStatic() throws {
        var pair = MemoryPair(policy: Fixtures.policy(store: Fixtures.store()), mode: .anonymous(serverKey: Fixtures.serverKey.publicKey))
        try pair.establish()
        #expect(pair.log.notes.contains(.menu(["0:password,publickey", "echo", "env", "time"])))
    }

    @Test func passwordLoginShowsMoreAndIsAudited() throws {
        let store = Fixtures.store()
        var pair = MemoryPair(policy: Fixtures.policy(store: store))
        try pair.establish()
        try pair.login("alice", "correct horse")
        #expect(pair.log.notes.contains(.reply([0: "token"])))
        // alice is in group admins: she sees admin-only and notes; index 0 now offers invalidation.
        #expect(pair.log.notes.last == .menu(["0:invalidate", "echo", "env", "time", "admin-only", "notes"]))
        let auth = store.allAudit.filter { $0.kind == .authentication }
        #expect(auth.count == 1)
        #expect(auth.first?.identity == "alice")
        #expect(auth.first?.method == "password")
        #expect(auth.first?.result == "ok")
        #expect(auth.first?.clientKey == Fingerprint.of(Fixtures.clientKey.publicKey))
        #expect(store.allAudit.contains { $0.kind == .tokenIssued && $0.identity == "alice" })
        // The store keeps the token's public key, never the secret.
        let token = try #require(pair.log.token(at: 0))
        let stored = try #require(store.allTokens.first { $0.kind == .authorization })
        #expect(stored.id == (try TokenProof.tokenID(secret: token)).description)
        #expect(!stored.publicKey.isEmpty && !token.contains(stored.publicKey))
        #expect(stored.expiresAt.timeIntervalSince(stored.issuedAt) == 86400)
    }

    @Test func bobDoesNotSeeTheAdminApplication() throws {
        var pair = MemoryPair(policy: Fixtures.policy(store: Fixtures.store()))
        try pair.establish()
        try pair.login("bob", "hunter2")
        #expect(pair.log.notes.last == .menu(["0:invalidate", "echo", "env", "time", "notes"]))
    }

    @Test func failedLoginsAreSlowedPerSourceAndPerIdentity() throws {
        let store = Fixtures.store()
        let clock = TestClock()
        let policy = Fixtures.policy(store: store, clock: clock)
        var pair = MemoryPair(policy: policy)
        try pair.establish()
        try pair.login("alice", "wrong")
        #expect(pair.log.notes.last == .reply([0: "authentication_failed"]))
        // The reply to the failure keeps the common login reply time (0.05…0.1 s by default);
        // the window it opened is for the next attempt.
        #expect((0.05...0.1).contains(policy.takeReplyDelay(serverSessionID: pair.server.serverSessionID) ?? -1))
        // Inside the penalty window even the right password is refused without being checked.
        try pair.login("alice", "correct horse")
        #expect(pair.log.notes.last == .reply([0: "rate_limited"]))
        // That refusal, too, is answered only when the window has passed.
        #expect(policy.takeReplyDelay(serverSessionID: pair.server.serverSessionID) == 0.25)
        // From another network the real user is not refused (the daemon delays that check by at
        // most login_delay_identity_max: `loginDelay`).
        #expect(policy.loginDelay(fields: ["user": "alice"]) == 0.25)
        var other = MemoryPair(policy: policy, peerAddress: "198.51.100.3")
        try other.establish()
        try other.login("alice", "correct horse")
        #expect(other.log.notes.contains(.reply([0: "token"])))
        #expect((0.05...0.1).contains(policy.takeReplyDelay(serverSessionID: other.server.serverSessionID) ?? -1), "a success keeps the same time")
        #expect(policy.loginDelay(fields: ["user": "alice"]) == 0, "a success clears the identity-wide delay")
        // The guessing network stays refused for alice.
        try pair.login("alice", "correct horse")
        #expect(pair.log.notes.last == .reply([0: "rate_limited"]))
        // After the window a second failure doubles the delay.
        clock.advance(0.3)
        try pair.login("alice", "still wrong")
        #expect(pair.log.notes.last == .reply([0: "authentication_failed"]))
        #expect((0.05...0.1).contains(policy.takeReplyDelay(serverSessionID: pair.server.serverSessionID) ?? -1))
        clock.advance(0.3)
        try pair.login("alice", "correct horse")
        #expect(pair.log.notes.last == .reply([0: "rate_limited"]))
        #expect(abs((policy.takeReplyDelay(serverSessionID: pair.server.serverSessionID) ?? 0) - 0.2) < 1e-9, "the rest of the doubled window")
        clock.advance(0.3)
        try pair.login("alice", "correct horse")
        #expect(pair.log.notes.contains(.reply([0: "token"])))
        let results = store.allAudit.filter { $0.kind == .authentication }.map { $0.result ?? "" }
        #expect(results == ["authentication_failed", "rate_limited", "ok", "rate_limited", "authentication_failed", "rate_limited", "ok"])
    }

    /// Guessing from many networks: each network is refused for the user after its own failures;
    /// the user-wide slow-down only delays, and never by more than `identityMaximum`.
    @Test func guessingFromManyNetworksNeverLocksTheUserOut() {
        let throttle = LoginThrottle(base: 0.25, maximum: 8, identityMaximum: 1)
        var now = 0.0
        for round in 0..<20 {
            for net in 0..<50 {
                let source = "10.\(net).0.\(round + 1)"
                if throttle.wait(source: source, identity: "alice", now: now) == 0 {
                    throttle.failed(source: source, identity: "alice", now: now)
                }
            }
            now += 0.5
        }
        // Every guessing network is in its window for alice (50 networks, 20 rounds: up to 8 s).
        #expect(throttle.wait(source: "10.7.0.200", identity: "alice", now: now) > 0)
        // The real user elsewhere is refused by nothing and delayed by at most a second.
        #expect(throttle.wait(source: "203.0.113.9", identity: "alice", now: now) == 0)
        throttle.failed(source: "10.99.0.1", identity: "alice", now: now)
        #expect(throttle.identityDelay(identity: "alice", now: now + 0.1) <= 1)
        #expect(throttle.identityDelay(identity: "alice", now: now + 0.1) > 0)
        #expect(throttle.wait(source: "203.0.113.9", identity: "alice", now: now + 0.1) == 0)
        // Another user is untouched.
        #expect(throttle.identityDelay(identity: "bob", now: now) == 0)
    }

    @Test func delaysAreCapped() {
        let throttle = LoginThrottle(base: 0.25, maximum: 8)
        var delays: [Double] = []
        for i in 0..<8 { delays.append(throttle.failed(source: "192.0.2.1", identity: "x", now: Double(i) * 10)) }
        #expect(delays == [0.25, 0.5, 1, 2, 4, 8, 8, 8])
        throttle.succeeded(source: "192.0.2.1", identity: "x")
        #expect(throttle.wait(source: "192.0.2.1", identity: "x", now: 70.1) == 0)
    }

    @Test func noiseStaticLoginUsesTheHandshakeKey() throws {
        let store = Fixtures.store()
        try store.upsertUser(UserRecord(name: "carol", publicKeys: [Base64URL.encode(Fixtures.clientKey.publicKey)]))
        var pair = MemoryPair(policy: Fixtures.policy(store: store))
        try pair.establish()
        try pair.request([:], authentication: .credentials(["auth_method": "noise_static"]))
        #expect(pair.log.notes.contains(.reply([0: "token"])))
        #expect(pair.serverEvents.contains("authenticated carol"))
        // Another client key is not registered.
        var other = MemoryPair(policy: Fixtures.policy(store: store),
                               mode: .knownServer(serverKey: Fixtures.serverKey.publicKey, clientStatic: Fixtures.otherClientKey))
        try other.establish()
        try other.request([:], authentication: .credentials(["auth_method": "noise_static"]))
        #expect(other.log.notes.last == .reply([0: "authentication_failed"]))
    }

    @Test func publicKeyLoginVerifiesASignatureOverThisChannel() throws {
        let store = Fixtures.store()
        let signing = Curve25519.Signing.PrivateKey()
        let pub = Array(signing.publicKey.rawRepresentation)
        try store.upsertUser(UserRecord(name: "dave", publicKeys: [Base64URL.encode(pub)]))
        var pair = MemoryPair(policy: Fixtures.policy(store: store))
        try pair.establish()
        // A signature over some other connection's hash fails.
        let wrong = try AuthenticationProof.sign(handshakeHash: [UInt8](repeating: 1, count: 32), with: signing)
        try pair.request([:], authentication: .credentials(["auth_method": "publickey", "public_key": .string(Base64URL.encode(pub)),
                                                            "signature": .string(Base64URL.encode(wrong))]))
        #expect(pair.log.notes.last == .reply([0: "authentication_failed"]))
        var fresh = MemoryPair(policy: Fixtures.policy(store: store), peerAddress: "192.0.2.77")
        try fresh.establish()
        let h = try #require(fresh.client.handshake?.handshakeHash)
        let good = try AuthenticationProof.sign(handshakeHash: h, with: signing)
        try fresh.request([:], authentication: .credentials(["auth_method": "publickey", "public_key": .string(Base64URL.encode(pub)),
                                                             "signature": .string(Base64URL.encode(good))]))
        #expect(fresh.log.notes.contains(.reply([0: "token"])))
        #expect(fresh.serverEvents.contains("authenticated dave"))
    }

    @Test func unknownMethodsAndBadBodiesAreRefused() throws {
        var pair = MemoryPair(policy: Fixtures.policy(store: Fixtures.store()))
        try pair.establish()
        try pair.request([:], authentication: .credentials(["auth_method": "kerberos"]))
        #expect(pair.log.notes.last == .reply([0: "unknown_auth_method"]))
        try pair.request([:], authentication: .credentials(["auth_method": "password", "user": "alice"]))
        #expect(pair.log.notes.last == .reply([0: "invalid_request_body"]))
    }

    @Test func auditFailsClosedForLoginsWithStoreUnavailable() throws {
        let store = Fixtures.store()
        var pair = MemoryPair(policy: Fixtures.policy(store: store))
        try pair.establish()
        store.failAudit = true
        try pair.login("alice", "correct horse")
        #expect(pair.log.notes.last == .reply([0: "store_unavailable"]))
        #expect(store.allTokens.isEmpty)
        // Application tokens too.
        let echo = try #require(pair.log.index(of: "echo"))
        try pair.request([echo: [:]])
        #expect(pair.log.notes.last == .reply([echo.rawValue: "store_unavailable"]))
    }

    /// A login the server could not check (its store is unreachable) is `store_unavailable`, not
    /// `authorization_token_invalid`: a client keeps a saved login that may well be good.
    @Test func anUncheckableLoginIsStoreUnavailableNotInvalid() throws {
        let store = Fixtures.store()
        let policy = Fixtures.policy(store: store)
        var first = MemoryPair(policy: policy)
        try first.establish()
        try first.login("alice", "correct horse")
        let token = try #require(first.log.token(at: 0))
        let notes = try #require(first.log.index(of: "notes"))  // for logged-in users only

        store.failTokenReads = true
        var later = MemoryPair(policy: policy)
        try later.establish()
        try later.request([notes: [:]], authorizationToken: token)
        #expect(later.log.notes.last == .reply([notes.rawValue: "store_unavailable"]), "\(later.log.notes)")
        store.failTokenReads = false
        try later.request([notes: [:]], authorizationToken: token)
        #expect(later.log.token(at: notes) != nil, "\(later.log.notes)")
    }

    @Test func applicationTokensAreBoundToAddressAndExpire() throws {
        let store = Fixtures.store()
        let policy = Fixtures.policy(store: store)
        var pair = MemoryPair(policy: policy)
        try pair.establish()
        let env = try #require(pair.log.index(of: "env"))
        try pair.request([env: ["greeting": "hi", "count": 3]])
        let token = try #require(pair.log.token(at: env))
        let record = try #require(store.allTokens.first { $0.kind == .application })
        #expect(record.peerAddress == "192.0.2.10")
        #expect(record.application == "env")
        #expect(record.requestJSON == #"{"count":3,"greeting":"hi"}"#)
        #expect(record.expiresAt.timeIntervalSince(record.issuedAt) == 60)

        // Opened on the same session: accepted.
        let s = try pair.client.openStream(applicationToken: token)
        pair.pump()
        #expect(pair.log.notes.contains(.accepted(s)))
        #expect(pair.opened.values.map(\.application) == ["env"])

        // A new connection from the same address presenting it in its first message: accepted.
        var again = MemoryPair(policy: policy)
        try again.establish(ClientStart(application: .init(token: token)))
        #expect(again.log.notes.contains(.accepted(1)))

        // From another address: refused.
        var elsewhere = MemoryPair(policy: policy, peerAddress: "203.0.113.5")
        try elsewhere.establish(ClientStart(application: .init(token: token)))
        #expect(elsewhere.log.notes.contains(.rejected(1, "token_wrong_address")))
        #expect(elsewhere.log.notes.contains { if case .closed = $0 { true } else { false } })

        // After its lifetime: expired.
        var late = MemoryPair(policy: policy)
        late.now = Timestamp(seconds: pair.now.seconds + 61)
        try late.establish(ClientStart(application: .init(token: token)))
        #expect(late.log.notes.contains(.rejected(1, "token_expired")))

        let refused = store.allAudit.filter { $0.kind == .tokenRefused }.map { $0.result ?? "" }
        #expect(refused == ["token_wrong_address", "token_expired"])
        #expect(store.allAudit.filter { $0.kind == .tokenUsed }.count == 2)
    }

    @Test func theLoginsBehindStreamsAreNotedWithTheirExpiry() throws {
        let store = Fixtures.store()
        var settings = ServerPolicy.Settings()
        settings.authorizationTokenLifetime = 120
        let policy = Fixtures.policy(store: store, settings: settings)
        var pair = MemoryPair(policy: policy)
        try pair.establish()
        try pair.login("alice", "correct horse")
        #expect(policy.loginExpiries.count == 0, "a login alone opens no stream")
        let echo = try #require(pair.log.index(of: "echo"))
        try pair.request([echo: [:]])
        let token = try #require(pair.log.token(at: echo))
        _ = try pair.client.openStream(applicationToken: token)
        pair.pump()
        #expect(policy.loginExpiries.count == 1)
        let login = try #require(store.allTokens.first { $0.kind == .authorization })
        #expect(policy.loginExpiries.takeExpired(now: login.expiresAt.addingTimeInterval(-0.001)).isEmpty)
        #expect(policy.loginExpiries.takeExpired(now: login.expiresAt) == [login.id])
        #expect(policy.loginExpiries.count == 0, "forgotten once its streams are ended")
    }

    @Test func authenticatedApplicationsNeedLogin() throws {
        let store = Fixtures.store()
        var pair = MemoryPair(policy: Fixtures.policy(store: store))
        try pair.establish()
        // notes is index 5 for logged-in users; a stranger asking for it learns nothing.
        try pair.request([5: [:], 4: [:]])
        #expect(pair.log.notes.last == .reply([4: "authorization_token_missing", 5: "authorization_token_missing"]))
        #expect(store.allTokens.isEmpty)
    }

    @Test func invalidatingTheAuthorizationTokenEndsEverythingIssuedUnderIt() throws {
        let store = Fixtures.store()
        let policy = Fixtures.policy(store: store)
        var pair = MemoryPair(policy: policy)
        try pair.establish()
        try pair.login("bob", "hunter2")
        let auth = try #require(pair.log.token(at: 0))
        let notes = try #require(pair.log.index(of: "notes"))
        let echo = try #require(pair.log.index(of: "echo"))
        try pair.request([notes: [:], echo: [:]])
        let notesToken = try #require(pair.log.token(at: notes))
        let echoToken = try #require(pair.log.token(at: echo))
        let a = try pair.client.openStream(applicationToken: notesToken)
        let b = try pair.client.openStream(applicationToken: echoToken)
        pair.pump()
        #expect(pair.opened.count == 2)

        // A second session of the same user, to invalidate from.
        var other = MemoryPair(policy: policy)
        try other.establish(ClientStart(authorizationToken: auth))
        try other.request([:], authentication: .invalidateTokens([auth]))
        #expect(other.log.notes.contains(.reply([0: "invalidated 3"])))
        #expect(Set(other.invalidated.map(\.description)) == Set(store.allTokens.map(\.id)))
        // The daemon's SessionRegistry calls revoke on every live session; here by hand.
        try pair.server.revoke(tokenIDs: Set(other.invalidated)) { _ in }
        var log = pair.log
        pair.client.receive(pair.server.drainOutbound { Array($0) }, now: pair.now, delegate: TrustAnyServerKey()) { log.add($0) }
        pair.log = log
        #expect(pair.log.closedCode(a) == "token_revoked")
        #expect(pair.log.closedCode(b) == "token_revoked")
        // New use is refused at once.
        let c = try pair.client.openStream(applicationToken: echoToken)
        pair.pump()
        #expect(pair.log.notes.contains(.rejected(c, "token_revoked")))
        var reuse = MemoryPair(policy: policy)
        try reuse.establish(ClientStart(authorizationToken: auth))
        #expect(reuse.log.notes.contains(.serverError("token_revoked")))
        // The session that logged in with it gets no new application tokens under it.
        try pair.request([echo: [:]])
        #expect(pair.log.notes.last == .reply([echo.rawValue: "token_revoked"]))
        #expect(store.allAudit.filter { $0.kind == .tokenInvalidated }.count == 3)
    }

    @Test func usersCannotInvalidateOthersTokens() throws {
        let store = Fixtures.store()
        let policy = Fixtures.policy(store: store)
        var alice = MemoryPair(policy: policy)
        try alice.establish()
        try alice.login("alice", "correct horse")
        let aliceToken = try #require(alice.log.token(at: 0))
        var bob = MemoryPair(policy: policy, peerAddress: "192.0.2.11")
        try bob.establish()
        try bob.login("bob", "hunter2")
        try bob.request([:], authentication: .invalidateTokens([aliceToken]))
        #expect(bob.log.notes.last == .reply([0: "token_invalid"]))
        #expect(store.allTokens.allSatisfy { $0.revokedAt == nil })
    }

    @Test func earlyDataIsAdmittedOnce() {
        let policy = Fixtures.policy(store: Fixtures.store())
        let e = [UInt8](repeating: 5, count: 32)
        let t = Timestamp(seconds: 1_800_000_000)
        #expect(policy.admitEarlyData(clientEphemeral: e, timestamp: t, now: t))
        #expect(!policy.admitEarlyData(clientEphemeral: e, timestamp: t, now: t))
        #expect(!policy.admitEarlyData(clientEphemeral: [UInt8](repeating: 6, count: 32), timestamp: t, now: Timestamp(seconds: t.seconds + 500)))
    }
}

@Suite("Limits")
struct LimitTests {
    @Test func handshakeBucketAllowsBurstThenRate() {
        let limiter = HandshakeRateLimiter(rate: 20, burst: 5)
        let first = (0..<8).map { _ in limiter.admit("192.0.2.1", now: 10) }
        #expect(first == [true, true, true, true, true, false, false, false])
        // Another source has its own bucket.
        #expect(limiter.admit("192.0.2.2", now: 10))
        // 20/s: one more token every 50 ms.
        #expect(limiter.admit("192.0.2.1", now: 10.051))
        #expect(!limiter.admit("192.0.2.1", now: 10.052))
        // IPv6 sources share a bucket per /64.
        for i in 0..<5 { #expect(limiter.admit("2001:db8:1:2::\(i + 1)", now: 10)) }
        #expect(!limiter.admit("2001:db8:1:2:ffff::9", now: 10))
        #expect(limiter.admit("2001:db8:1:3::1", now: 10))
    }

    @Test func failedHandshakesCostTheirSourceMore() {
        let limiter = HandshakeRateLimiter(rate: 20, burst: 5)
        // Five failures drain the burst and five more put the bucket at -5 (its floor).
        for _ in 0..<10 { limiter.penalize("192.0.2.1", now: 10) }
        #expect(!limiter.admit("192.0.2.1", now: 10))
        // A quarter second refills five tokens: still below one.
        #expect(!limiter.admit("192.0.2.1", now: 10.25))
        #expect(limiter.admit("192.0.2.1", now: 10.31))
        #expect(limiter.admit("192.0.2.9", now: 10), "other sources are untouched")
    }

    @Test func aKnownAddressHasABucketOfItsOwnUntilItIsForgotten() {
        let limiter = HandshakeRateLimiter(rate: 20, burst: 5, knownRate: 200, knownBurst: 50, knownFor: 600)
        for _ in 0..<5 { #expect(limiter.admit("192.0.2.1", now: 10)) }
        #expect(!limiter.admit("192.0.2.1", now: 10), "a stranger: burst of 5")
        limiter.vouch(for: "192.0.2.1", now: 10)
        let known = (0..<60).map { _ in limiter.admit("192.0.2.1", now: 10) }
        #expect(known.filter { $0 }.count == 50, "a known address: its own burst of 50")
        // 200/s: a token every 5 ms.
        #expect(limiter.admit("192.0.2.1", now: 10.006))
        // Only that exact address is known, not its neighbours.
        #expect(!limiter.isKnown("192.0.2.2", now: 10))
        // Failures cost the known bucket; when the time is up, the address is a stranger again.
        for _ in 0..<200 { limiter.penalize("192.0.2.1", now: 11) }
        #expect(!limiter.admit("192.0.2.1", now: 11))
        #expect(limiter.isKnown("192.0.2.1", now: 609))
        #expect(!limiter.isKnown("192.0.2.1", now: 611))
        let after = (0..<8).map { _ in limiter.admit("192.0.2.1", now: 611) }
        #expect(after == [true, true, true, true, true, false, false, false])
        // known_source_time = 0: nobody is ever known.
        let never = HandshakeRateLimiter(rate: 20, burst: 5, knownFor: 0)
        never.vouch(for: "192.0.2.1", now: 1)
        #expect(!never.isKnown("192.0.2.1", now: 1))
    }

    @Test func handshakeLimiterMemoryIsBounded() {
        let limiter = HandshakeRateLimiter(rate: 20, burst: 5, maxSources: 100)
        for i in 0..<1000 { _ = limiter.admit("10.0.\(i / 256).\(i % 256)", now: Double(i)) }
        #expect(limiter.trackedSources <= 101)
    }

    @Test func listenAddressesParse() throws {
        #expect(try ListenAddress.parse("127.0.0.1:7300") == ListenAddress(host: "127.0.0.1", port: 7300))
        #expect(try ListenAddress.parse("[::1]:0") == ListenAddress(host: "::1", port: 0))
        #expect(try ListenAddress.parse("[::1]:0").isIPv6)
        #expect(throws: ListenAddress.ParseError.self) { try ListenAddress.parse("::1:7300") }
        #expect(throws: ListenAddress.ParseError.self) { try ListenAddress.parse("host:99999") }
    }

    @Test func execEnvironmentDescribesTheSession() {
        let def = Fixtures.applications()[4]
        let env = Launcher.environment(for: Launcher.Request(application: def, identity: "alice", peerAddress: "192.0.2.1",
                                                             serverSessionID: "s-1", tokenID: "tid",
                                                             requestJSON: #"{"count":3,"greeting":"hi there","x-y":null}"#))
        #expect(env["USP_IDENTITY"] == "alice")
        #expect(env["USP_PEER_ADDRESS"] == "192.0.2.1")
        #expect(env["USP_APPLICATION"] == "env")
        #expect(env["USP_SESSION"] == "s-1")
        #expect(env["USP_TOKEN_ID"] == "tid")
        #expect(env["USP_FIELD_GREETING"] == "hi there")
        #expect(env["USP_FIELD_COUNT"] == "3")
        #expect(env["USP_FIELD_X_Y"] == "")
        #expect(env["USP_REQUEST_JSON"]?.contains("greeting") == true)
    }
}

/// uspd.toml rate limits as objects: per-source connections, per-caller streams.
@Suite struct RateLimitPolicyTests {
    @Test func concurrentStreamsPerCaller() {
        let limiter = StreamLimiter(perMinute: nil, concurrent: 2)
        let alice = StreamLimiter.caller(identity: "alice", peerAddress: "192.0.2.1")
        let stranger = StreamLimiter.caller(identity: nil, peerAddress: "192.0.2.1")
        #expect(stranger == "anonymous from 192.0.2.1")
        #expect(limiter.admit(alice, now: 0) == nil)
        #expect(limiter.admit(alice, now: 0) == nil)
        let refused = limiter.admit(alice, now: 0)
        #expect(refused?.code == .tooManyStreams)
        #expect(refused?.detail == "max_streams_per_identity (2) reached by alice")
        // Another caller from the same address has its own count.
        #expect(limiter.admit(stranger, now: 0) == nil)
        limiter.release(alice)
        #expect(limiter.openCount(alice) == 1)
        #expect(limiter.admit(alice, now: 0) == nil)
    }

    @Test func streamsPerMinutePerCallerRefillOverTheMinute() {
        let limiter = StreamLimiter(perMinute: 3, concurrent: nil)
        for _ in 0..<3 {
            #expect(limiter.admit("bob", now: 100) == nil)
            limiter.release("bob")
        }
        let refused = limiter.admit("bob", now: 100)
        #expect(refused?.code == .rateLimited)
        #expect(refused?.detail == "max_streams_per_minute (3) reached by bob")
        #expect(limiter.openCount("bob") == 0, "a refused stream holds nothing")
        #expect(limiter.admit("carol", now: 100) == nil)
        // One stream's worth comes back every 20 s.
        #expect(limiter.admit("bob", now: 119) != nil)
        #expect(limiter.admit("bob", now: 121) == nil)
    }
}
