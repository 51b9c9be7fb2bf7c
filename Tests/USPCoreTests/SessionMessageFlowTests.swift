import Testing
@testable import USPCore
import USPTestSupport

/// Every session message through a real client and server, and the authorization rules of
/// proposal §4: what the menu shows, who gets which token, and what a token is good for.
@Suite struct SessionMessageFlowTests {
    static let alice: AuthenticationRequest = .credentials(["user": "alice", "password": "correct horse"])

    /// A connection that logged in; returns it and the authorization token secret.
    static func loggedIn(_ policy: TestPolicy = TestPolicy(), pattern: HandshakeLayout.Pattern = .ik,
                         peerAddress: String = "192.0.2.10", seed: UInt64 = 1) throws -> (SessionPair, String) {
        var pair = SessionPair(pattern, policy: policy, peerAddress: peerAddress, seed: seed)
        try pair.establish()
        let token = try pair.login()
        return (pair, token)
    }

    // MARK: - initial_request and menu

    @Test func initialRequestWithoutTokenGetsThePublicMenu() throws {
        var pair = SessionPair(.xx)
        try pair.establish()
        let menu = try #require(pair.menus.first)
        #expect(pair.menus.count == 1)
        #expect(menu.serverSessionID == pair.server.serverSessionID)
        #expect(menu.applications.keys.map(\.rawValue).sorted() == [1, 2])
        #expect(menu.applications[1]?.name == "echo")
        #expect(menu.applications[2]?.expectedRequestBody == ["zone": "string?"])
        guard case .methods(let methods)? = menu.authentication else {
            Issue.record("index 0 before login must list methods: \(String(describing: menu.authentication))")
            return
        }
        #expect(methods.map(\.method) == ["password"])
        #expect(pair.server.identity == nil)
        #expect(!pair.serverSeen.contains { if case .authenticated = $0 { true } else { false } })
    }

    @Test(arguments: [HandshakeLayout.Pattern.xx, .ik, .nk])
    func initialRequestWithValidTokenGetsTheAuthenticatedMenu(pattern: HandshakeLayout.Pattern) throws {
        let policy = TestPolicy()
        let (_, token) = try Self.loggedIn(policy)
        var pair = SessionPair(pattern, policy: policy, seed: 2)
        try pair.establish(ClientStart(authorizationToken: token))
        #expect(pair.serverSeen.contains(.authenticated("alice")))
        #expect(pair.server.identity?.name == "alice")
        #expect(pair.server.authorizationTokenID == (try TokenProof.tokenID(secret: token)))
        let menu = try #require(pair.menus.last)
        #expect(pair.menus.count == 1)
        #expect(menu.applications.keys.map(\.rawValue).sorted() == [1, 2, 3])
        guard case .tokenInvalidation(let offer)? = menu.authentication else {
            Issue.record("index 0 after login must offer invalidation")
            return
        }
        #expect(offer.name == "invalidate_tokens")
        // IK and NK: the token rode in message 1, so the authenticated menu came in one round trip.
        #expect(pair.flights == (pattern == .xx ? 4 : 2))
    }

    @Test func initialRequestWithInvalidTokenIsAnErrorAndClose() throws {
        var pair = SessionPair(.ik)
        let stranger = TokenProof.issue(random: SeededRandom(seed: 4242)).secret
        try pair.establish(ClientStart(authorizationToken: stranger))
        #expect(pair.clientSeen.suffix(2) == [.serverError(.authorizationInvalid), .closed(.authorizationInvalid)])
        #expect(pair.menus.isEmpty)
        #expect(pair.server.state == .closed)
        #expect(pair.serverSeen.last == .closed(.authorizationInvalid))
        #expect(pair.server.identity == nil)
    }

    // MARK: - service_request and service_reply

    @Test func loginAndPublicAppInOneRequest() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let reply = try pair.request([1: [:], 2: ["zone": "UTC"], 3: ["user": "root"]], authentication: Self.alice)
        #expect(reply.results.count == 4)
        let authToken = try #require(reply.token(0))
        #expect(authToken.hasPrefix(TokenProof.secretPrefix))
        #expect(reply.token(1) != nil)
        #expect(reply.token(2) != nil)
        // Index 3 was not on the menu this request was made against.
        #expect(reply.code(3) == .authorizationMissing)
        #expect(Set([authToken, reply.token(1)!, reply.token(2)!]).count == 3)
        #expect(pair.serverSeen.contains(.authenticated("alice")))
        // The login sends the authenticated menu after the reply.
        #expect(pair.clientSeen.suffix(2) == [.reply([0: "token", 1: "token", 2: "token", 3: "authorization_token_missing"]), .menu([1, 2, 3])])
        #expect(pair.client.menu?.applications[3]?.name == "ssh")
        // Now index 3 works.
        let ssh = try pair.request([3: ["user": "root"]])
        #expect(ssh.token(3) != nil)
    }

    @Test func wrongPasswordIsAnErrorAtIndex0() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let reply = try pair.request([1: [:]], authentication: .credentials(["user": "alice", "password": "wrong"]))
        #expect(reply.code(0) == .authenticationFailed)
        #expect(reply.token(1) != nil)
        #expect(pair.menus.count == 1)  // no new menu
        #expect(pair.server.identity == nil)
        #expect(pair.server.state == .established)
        let missing = try pair.request([:], authentication: .credentials(["user": "alice"]))
        #expect(missing.code(0) == .invalidRequestBody)
    }

    @Test func serviceRequestWithTheAuthorizationTokenInsteadOfALogin() throws {
        let policy = TestPolicy()
        let (_, token) = try Self.loggedIn(policy)
        var pair = SessionPair(.nk, policy: policy, seed: 3)
        try pair.establish()
        #expect(pair.menus.last?.applications[3] == nil)
        let reply = try pair.request([3: ["user": "root"]], authorizationToken: token)
        #expect(reply.token(3) != nil)
        // The session itself is still anonymous.
        #expect(pair.server.identity == nil)
    }

    // MARK: - Authorization semantics

    /// Before login, an index that is not on the menu, whether it exists (3, the secure app) or
    /// not (99), gets the same answer: nothing leaks.
    @Test func beforeLoginHiddenAndNonexistentIndicesLookTheSame() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let reply = try pair.request([3: ["user": "root"], 99: [:], 1: [:]])
        #expect(reply.code(3) == .authorizationMissing)
        #expect(reply.code(99) == .authorizationMissing)
        #expect(reply.results[3] == reply.results[99])
        #expect(reply.token(1) != nil)
    }

    @Test func beforeLoginWithAnInvalidAuthorizationTokenHiddenIndicesSayInvalid() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let stranger = TokenProof.issue(random: SeededRandom(seed: 77)).secret
        let reply = try pair.request([3: ["user": "root"], 99: [:], 2: [:]], authorizationToken: stranger)
        #expect(reply.code(3) == .authorizationInvalid)
        #expect(reply.code(99) == .authorizationInvalid)
        #expect(reply.token(2) != nil)  // public apps still work
    }

    @Test func afterLoginNonexistentIndexIsUnknown() throws {
        var (pair, _) = try Self.loggedIn()
        let reply = try pair.request([3: ["user": "root"], 99: [:], 4: [:]])
        #expect(reply.token(3) != nil)
        #expect(reply.code(99) == .unknownIndex)
        #expect(reply.code(4) == .unknownIndex)
    }

    @Test func invalidRequestBodies() throws {
        var (pair, _) = try Self.loggedIn()
        let reply = try pair.request([
            3: [:],                          // user missing
            2: ["zone": .integer(5)],        // wrong type
            1: ["unexpected": "field"],      // not in expected_request_body
        ])
        #expect(reply.code(3) == .invalidRequestBody)
        #expect(reply.code(2) == .invalidRequestBody)
        #expect(reply.code(1) == .invalidRequestBody)
        #expect(pair.server.state == .established)
        // A valid body for the optional field, and without it.
        let ok = try pair.request([2: ["zone": .null], 3: ["user": "bob"]])
        #expect(ok.token(2) != nil)
        #expect(ok.token(3) != nil)
    }

    @Test func applicationTokenFromAnotherAddress() throws {
        let policy = TestPolicy()
        let token = try SessionServerStateTests.echoToken(policy, peerAddress: "192.0.2.10")

        // On an ordinary session from another address: the OPEN is rejected, the session goes on.
        var other = SessionPair(.ik, policy: policy, peerAddress: "198.51.100.7", seed: 4)
        try other.establish()
        let stream = try other.client.openStream(applicationToken: token)
        other.pump()
        #expect(other.clientSeen.last == .rejected(stream, .tokenWrongAddress))
        #expect(other.server.state == .established)
        #expect(other.server.openStreamCount == 0)

        // On a dedicated connection from another address: error reply, then close.
        var dedicated = SessionPair(.ik, policy: policy, peerAddress: "198.51.100.7", seed: 5)
        try dedicated.establish(ClientStart(application: .init(token: token), initialData: [1, 2, 3]))
        #expect(dedicated.clientSeen.contains(.rejected(1, .tokenWrongAddress)))
        #expect(dedicated.clientSeen.contains(.appReply("token_wrong_address")))
        #expect(dedicated.clientSeen.last == .closed(.tokenWrongAddress))
        #expect(dedicated.serverSeen.last == .closed(.tokenWrongAddress))
        #expect(dedicated.serverData.isEmpty)

        // From the right address it works.
        var right = SessionPair(.ik, policy: policy, peerAddress: "192.0.2.10", seed: 6)
        try right.establish(ClientStart(application: .init(token: token), initialData: [1, 2, 3]))
        #expect(right.serverData[1] == [1, 2, 3])
    }

    @Test func expiredApplicationToken() throws {
        let policy = TestPolicy()
        var pair = SessionPair(.ik, policy: policy)
        try pair.establish()
        let token = try pair.token(1)
        pair.now.seconds += 59
        _ = try pair.client.openStream(applicationToken: token)
        pair.pump()
        #expect(pair.clientSeen.last == .accepted(1))
        pair.now.seconds += 2
        _ = try pair.client.openStream(applicationToken: token)
        pair.pump()
        #expect(pair.clientSeen.last == .rejected(2, .tokenExpired))
    }

    @Test func expiredAuthorizationToken() throws {
        let policy = TestPolicy()
        let (first, token) = try Self.loggedIn(policy)
        var pair = SessionPair(.ik, policy: policy, seed: 9)
        pair.now = Timestamp(seconds: first.now.seconds + policy.tokenLifetime + 1)
        try pair.establish(ClientStart(authorizationToken: token))
        #expect(pair.clientSeen.suffix(2) == [.serverError(.tokenExpired), .closed(.tokenExpired)])
        #expect(pair.serverSeen.last == .closed(.tokenExpired))
    }

    /// Invalidating an application token at index 0 resets the streams opened with it on both
    /// sides, and the token is refused afterwards.
    @Test func invalidatingAnApplicationTokenResetsItsStreams() throws {
        var (pair, _) = try Self.loggedIn()
        let echo = try pair.token(1)
        let time = try pair.token(2)
        let a = try pair.client.openStream(applicationToken: echo)
        let b = try pair.client.openStream(applicationToken: time)
        pair.pump()
        #expect(pair.server.openStreamCount == 2)

        let reply = try pair.request([:], authentication: .invalidateTokens([echo]))
        #expect(reply.results[.authentication] == .invalidated(1))
        #expect(pair.serverSeen.contains(.invalidated(1)))
        #expect(pair.serverSeen.contains(.closedStream(1, .tokenRevoked)))
        #expect(pair.clientSeen.contains(.closedStream(a, .tokenRevoked)))
        #expect(pair.server.openStreamCount == 1)
        #expect(pair.server.streamGrants[1] == nil)
        #expect(pair.server.streamGrants[2]?.application == "time")

        // The other stream still works.
        #expect(try pair.clientWrite(b, [9]) == 1)
        #expect(pair.serverData[2] == [9])

        // The token is refused from now on.
        let c = try pair.client.openStream(applicationToken: echo)
        pair.pump()
        #expect(pair.clientSeen.last == .rejected(c, .tokenRevoked))
        pair.applicationReplies = []
        try pair.client.applicationAction(token: echo, action: "status")
        pair.pump()
        #expect(pair.clientSeen.last == .appReply("token_revoked"))
    }

    /// Invalidating the authorization token ends every stream opened under it, and the token
    /// no longer opens an authenticated menu.
    @Test func invalidatingTheAuthorizationTokenEndsItsStreams() throws {
        let policy = TestPolicy()
        var (pair, authToken) = try Self.loggedIn(policy)
        let ssh = try pair.token(3, ["user": "root"])
        let stream = try pair.client.openStream(applicationToken: ssh)
        pair.pump()
        #expect(pair.serverSeen.contains(.opened(1, "ssh")))

        let reply = try pair.request([:], authentication: .invalidateTokens([authToken]))
        #expect(reply.results[.authentication] == .invalidated(1))
        #expect(pair.clientSeen.contains(.closedStream(stream, .tokenRevoked)))
        #expect(pair.serverSeen.contains(.closedStream(1, .tokenRevoked)))

        var next = SessionPair(.ik, policy: policy, seed: 12)
        try next.establish(ClientStart(authorizationToken: authToken))
        #expect(next.clientSeen.suffix(2) == [.serverError(.tokenRevoked), .closed(.tokenRevoked)])
    }

    @Test func invalidationNeedsALogin() throws {
        let policy = TestPolicy()
        var (first, _) = try Self.loggedIn(policy)
        let echo = try first.token(1)
        var pair = SessionPair(.ik, policy: policy, seed: 13)
        try pair.establish()
        let reply = try pair.request([:], authentication: .invalidateTokens([echo]))
        #expect(reply.code(0) == .authorizationMissing)
        #expect(policy.tokens[try TokenProof.tokenID(secret: echo)]?.revoked == false)
        // Unknown tokens are an error at index 0, not a session error.
        var (owner, _) = try Self.loggedIn(policy, seed: 14)
        let unknown = try owner.request([:], authentication: .invalidateTokens([TokenProof.issue(random: SeededRandom(seed: 5)).secret]))
        #expect(unknown.code(0) == .tokenInvalid)
        #expect(owner.server.state == .established)
    }

    /// A presentation is a signature over the connection's handshake hash: copied onto another
    /// connection it proves nothing.
    @Test func presentationsAreBoundToTheirConnection() throws {
        let policy = TestPolicy()
        var (first, authToken) = try Self.loggedIn(policy)
        let echo = try first.token(1)
        let firstHash = try #require(first.client.handshake).handshakeHash

        var second = SessionPair(.ik, policy: policy, seed: 20)
        try second.establish()
        let secondHash = try #require(second.client.handshake).handshakeHash
        #expect(firstHash != secondHash)

        // An OPEN carrying the first connection's presentation of the echo token. (The client
        // session never hears the answers: it did not open these streams itself.)
        let copied = try ApplicationSessionRequest(token: TokenProof.present(secret: echo, handshakeHash: firstHash), action: .begin)
        let answer = try second.clientSendsAndTakesAnswer([.open(stream: 1, session: try copied.encodeOpenBody())])
        #expect(answer == [.reject(opener: 1, code: USPError.Code.tokenInvalid.wireValue, message: "Token invalid")])
        #expect(!second.serverSeen.contains { if case .opened = $0 { true } else { false } })
        // The same token presented for this connection works.
        let fresh = try ApplicationSessionRequest(token: TokenProof.present(secret: echo, handshakeHash: secondHash), action: .begin)
        let accepted = try second.clientSendsAndTakesAnswer([.open(stream: 2, session: try fresh.encodeOpenBody())])
        #expect(accepted == [.accept(opener: 2, acceptor: 2)])  // the rejected OPEN used local id 1
        #expect(second.serverSeen.contains(.opened(2, "echo")))

        // The authorization token, copied: the secure app stays hidden.
        func ask(_ presentation: String) throws -> ServiceReply? {
            let request = ServiceRequest(clientSessionID: second.client.clientSessionID, authorizationToken: presentation,
                                         services: [3: ["user": "root"]])
            let frames = try second.clientSendsAndTakesAnswer([try messageFrame(.serviceRequest(request))])
            guard case .message(let kind, let json)? = frames.first, case .serviceReply(let reply) = try SessionMessage.decode([kind] + json)
            else { return nil }
            return reply
        }
        #expect(try ask(TokenProof.present(secret: authToken, handshakeHash: firstHash))?.code(3) == .authorizationInvalid)
        #expect(try ask(TokenProof.present(secret: authToken, handshakeHash: secondHash))?.token(3) != nil)
        #expect(second.server.state == .established)
    }

    // MARK: - application_session

    @Test func applicationActionsOnAnEstablishedSession() throws {
        var pair = SessionPair(.ik)
        try pair.establish()
        let echo = try pair.token(1)
        let stream = try pair.client.openStream(applicationToken: echo)
        pair.pump()

        try pair.client.applicationAction(token: echo, action: "status")
        pair.pump()
        let status = try #require(pair.applicationReplies.last)
        #expect(status.serverSessionID == pair.server.serverSessionID)
        #expect(status.outcome == .session(ApplicationSessionResult(action: "status", result: ["application": "echo"])))
        #expect(pair.policy.actions == ["status"])

        try pair.client.applicationAction(token: echo, action: "frobnicate", parameters: ["x": 1])
        pair.pump()
        #expect(pair.clientSeen.last == .appReply("unknown_action"))
        #expect(pair.server.state == .established)

        let stranger = TokenProof.issue(random: SeededRandom(seed: 31)).secret
        try pair.client.applicationAction(token: stranger, action: .end)
        pair.pump()
        #expect(pair.clientSeen.last == .appReply("token_invalid"))
        #expect(pair.server.openStreamCount == 1)

        // end: the application session's streams go away.
        try pair.client.applicationAction(token: echo, action: .end)
        pair.pump()
        #expect(pair.applicationReplies.last?.outcome == .session(ApplicationSessionResult(action: .end)))
        #expect(pair.server.openStreamCount == 0)
        #expect(pair.clientSeen.contains(.closedStream(stream, .ok)), "end resets with ok, not token_revoked")
        #expect(pair.server.state == .established)
    }

    @Test func dedicatedConnectionWithACustomAction() throws {
        let policy = TestPolicy()
        let token = try SessionServerStateTests.echoToken(policy)
        var pair = SessionPair(.ik, policy: policy, seed: 40)
        try pair.establish(ClientStart(application: .init(token: token, action: "status")))
        #expect(pair.client.state == .established)
        #expect(pair.server.state == .established)
        #expect(pair.client.applicationStream == nil)
        #expect(pair.applicationReplies.last?.outcome == .session(ApplicationSessionResult(action: "status", result: ["application": "echo"])))
        #expect(pair.flights == 2)
    }

    @Test func dedicatedConnectionWithAnUnknownActionCloses() throws {
        let policy = TestPolicy()
        let token = try SessionServerStateTests.echoToken(policy)
        var pair = SessionPair(.xx, policy: policy, seed: 41)
        try pair.establish(ClientStart(application: .init(token: token, action: "frobnicate")))
        #expect(pair.clientSeen.suffix(2) == [.appReply("unknown_action"), .closed(.unknownAction)])
        #expect(pair.serverSeen.last == .closed(.unknownAction))
    }

    @Test func dedicatedConnectionEnd() throws {
        let policy = TestPolicy()
        let token = try SessionServerStateTests.echoToken(policy)
        var pair = SessionPair(.nk, policy: policy, seed: 42)
        try pair.establish(ClientStart(application: .init(token: token, action: .end)))
        #expect(pair.clientSeen.last == .appReply("end"))
        #expect(pair.server.state == .established)
    }

    @Test func dedicatedConnectionWithAnUnknownTokenCloses() throws {
        var pair = SessionPair(.ik)
        let stranger = TokenProof.issue(random: SeededRandom(seed: 43)).secret
        try pair.establish(ClientStart(application: .init(token: stranger), initialData: Array("x".utf8)))
        #expect(pair.clientSeen.contains(.rejected(1, .tokenInvalid)))
        #expect(pair.clientSeen.last == .closed(.tokenInvalid))
        #expect(pair.serverSeen == [.handshake(.ik, early: true), .closed(.tokenInvalid)])
    }

    /// The wire form of each message as it went through the session matches its encoding.
    @Test func messagesOnTheWireAreTheirEncoding() throws {
        var pair = SessionPair(.xx)
        try pair.establish()
        _ = try pair.login()
        let clientMessages = try pair.clientRecords().flatMap(\.frames).compactMap { f -> SessionMessage? in
            guard case .message(let kind, let json) = f else { return nil }
            return try SessionMessage.decode([kind] + json)
        }
        #expect(clientMessages.map(\.kind) == [.initialRequest, .serviceRequest])
        let serverMessages = try pair.serverRecords().flatMap(\.frames).compactMap { f -> SessionMessage? in
            guard case .message(let kind, let json) = f else { return nil }
            return try SessionMessage.decode([kind] + json)
        }
        #expect(serverMessages.map(\.kind) == [.menu, .serviceReply, .menu])
        #expect(serverMessages.first == .menu(pair.menus[0]))
        #expect(serverMessages.last == .menu(pair.menus[1]))
        #expect(serverMessages[1] == .serviceReply(pair.serviceReplies[0]))
        if case .initialRequest(let r) = clientMessages[0] {
            #expect(r.clientSessionID == pair.client.clientSessionID)
            #expect(r.authorizationToken == nil)
            #expect(r.applicationSession == nil)
        }
    }
}
