import Testing
@testable import USPCore
import USPTestSupport

/// Begin by name (docs/PROTOCOL.md §6.1, §7.1): the server looks the application up on the
/// caller's menu, checks the body, has policy issue the token and begins with it.
@Suite struct SessionBeginByNameTests {
    /// The token ID in a begin-by-name reply.
    static func issuedTokenID(_ pair: SessionPair) -> String? {
        guard case .session(let s)? = pair.applicationReplies.last?.outcome, case .string(let id)? = s.result?["token_id"] else { return nil }
        return id
    }

    @Test(arguments: [HandshakeLayout.Pattern.ik, .nk])
    func aPublicApplicationInMessage1OneRoundTrip(pattern: HandshakeLayout.Pattern) throws {
        let policy = TestPolicy()
        var pair = SessionPair(pattern, policy: policy, seed: 40)
        try pair.start(ClientStart(application: .init(name: "echo"), initialData: Array("ping".utf8)))
        pair.deliverToServer(pair.client.drainOutbound { Array($0) })
        // Acted on before message 2 left: token issued, stream open, first bytes delivered.
        #expect(pair.serverSeen == [.handshake(pattern, early: true), .opened(1, "echo"), .data(1, Array("ping".utf8))])
        #expect(policy.issueContexts.count == 1)
        #expect(policy.issueContexts.first?.isEarlyData == true)
        #expect(pair.grants[1]?.identity == nil)
        #expect(try Array("pong".utf8).withUnsafeBytes { try pair.server.write(stream: 1, $0) } == 4)
        pair.deliverToClient(pair.server.drainOutbound { Array($0) })
        #expect(pair.clientSeen == [.handshake(pattern, early: true), .accepted(1), .appReply("begin"), .data(1, Array("pong".utf8))])
        // The reply names the token the server issued; the client never held it.
        let id = try #require(Self.issuedTokenID(pair))
        #expect(id == pair.grants[1]?.tokenID.description)
    }

    @Test func aSecureApplicationNeedsTheLoginAndSaysNothingBeforeIt() throws {
        let policy = TestPolicy()
        // Anonymous: "ssh" exists but is hidden; "nope" does not exist. Same answer for both.
        for name in ["ssh", "nope"] {
            var pair = SessionPair(.ik, policy: policy, seed: 41)
            try pair.establish(ClientStart(application: .init(name: name, request: ["user": "ann"]), initialData: Array("x".utf8)))
            #expect(pair.clientSeen.contains(.appReply("authorization_token_missing")), "\(name)")
            #expect(pair.clientSeen.contains(.rejected(1, .authorizationMissing)), "\(name)")
            #expect(pair.clientSeen.last == .closed(.authorizationMissing), "\(name)")
            #expect(!pair.serverSeen.contains { if case .opened = $0 { true } else { false } })
        }
        #expect(policy.issueContexts.isEmpty)

        // With a login: get an authorization token on one connection, begin by name on another.
        var first = SessionPair(.ik, policy: policy, seed: 42)
        try first.establish()
        let login = try first.login()
        var pair = SessionPair(.ik, policy: policy, seed: 43)
        try pair.establish(ClientStart(authorizationToken: login, application: .init(name: "ssh", request: ["user": "ann"]),
                                       initialData: Array("SSH-2.0".utf8)))
        #expect(pair.serverSeen.contains(.authenticated("alice")))
        #expect(pair.serverSeen.contains(.opened(1, "ssh")))
        #expect(pair.serverData[1] == Array("SSH-2.0".utf8))
        let grant = try #require(pair.grants[1])
        #expect(grant.identity?.name == "alice")
        #expect(grant.authorizationTokenID == (try TokenProof.tokenID(secret: login)))
        #expect(policy.issueContexts.last?.identity?.name == "alice")
    }

    @Test func aLoggedInCallerGetsUnknownApplicationAndBodyErrors() throws {
        let policy = TestPolicy()
        var first = SessionPair(.ik, policy: policy, seed: 44)
        try first.establish()
        let login = try first.login()

        var unknown = SessionPair(.ik, policy: policy, seed: 45)
        try unknown.establish(ClientStart(authorizationToken: login, application: .init(name: "ftp"), initialData: Array("x".utf8)))
        #expect(unknown.clientSeen.contains(.appReply("unknown_application")))
        #expect(unknown.clientSeen.last == .closed(.unknownApplication))

        // ssh needs {"user": string}.
        var body = SessionPair(.ik, policy: policy, seed: 46)
        try body.establish(ClientStart(authorizationToken: login, application: .init(name: "ssh", request: ["user": 7]), initialData: Array("x".utf8)))
        #expect(body.clientSeen.contains(.appReply("invalid_request_body")))
        guard case .error(let e)? = body.applicationReplies.last?.outcome else { Issue.record("no error reply"); return }
        #expect(e.message.contains("user"))
        #expect(body.clientSeen.last == .closed(.invalidRequestBody))
    }

    @Test func aBadAuthorizationTokenEndsTheSessionBeforeAnyLookup() throws {
        let policy = TestPolicy()
        var first = SessionPair(.ik, policy: policy, seed: 47)
        try first.establish()
        let login = try first.login()
        policy.tokens[try TokenProof.tokenID(secret: login)]!.revoked = true
        var pair = SessionPair(.ik, policy: policy, seed: 48)
        try pair.establish(ClientStart(authorizationToken: login, application: .init(name: "echo"), initialData: Array("x".utf8)))
        #expect(pair.clientSeen.contains(.serverError(.tokenRevoked)))
        #expect(pair.clientSeen.last == .closed(.tokenRevoked))
        #expect(policy.issueContexts.isEmpty)
    }

    @Test func refusedEarlyFramesAreSentAgainAndStillBeginByName() throws {
        let policy = TestPolicy()
        var pair = SessionPair(.ik, policy: policy, seed: 49)
        try pair.client.start(ClientStart(application: .init(name: "echo"), initialData: Array("hello".utf8)),
                              now: Timestamp(seconds: pair.now.seconds - 600))
        pair.pump()
        #expect(pair.clientSeen.first == .handshake(.ik, early: false))
        #expect(pair.serverSeen.suffix(2) == [.opened(1, "echo"), .data(1, Array("hello".utf8))])
        #expect(policy.issueContexts.count == 1)
        #expect(policy.issueContexts.first?.isEarlyData == false)
    }

    @Test func openByNameOnAnEstablishedSession() throws {
        let policy = TestPolicy()
        var pair = SessionPair(.ik, policy: policy, seed: 50)
        try pair.establish()
        // Before login: a hidden application is refused like a missing one, and the session goes on.
        let hidden = try pair.client.openStream(application: "ssh", request: ["user": "ann"])
        pair.pump()
        #expect(pair.clientSeen.contains(.rejected(hidden, .authorizationMissing)))
        let echo = try pair.client.openStream(application: "echo")
        pair.pump()
        #expect(pair.clientSeen.contains(.accepted(echo)))
        try pair.clientWrite(echo, Array("abc".utf8))
        #expect(pair.serverData.values.contains(Array("abc".utf8)))
        // After login, ssh opens by name and the token is issued under the login.
        _ = try pair.login()
        let ssh = try pair.client.openStream(application: "ssh", request: ["user": "ann"])
        pair.pump()
        #expect(pair.clientSeen.contains(.accepted(ssh)))
        #expect(pair.grants.values.contains { $0.application == "ssh" && $0.identity?.name == "alice" && $0.authorizationTokenID != nil })
        let ftp = try pair.client.openStream(application: "ftp")
        pair.pump()
        #expect(pair.clientSeen.contains(.rejected(ftp, .unknownApplication)))
        #expect(pair.server.state == .established)
    }

    @Test func theWireFormIsStrict() throws {
        func decode(_ json: String) -> USPError? {
            do { _ = try SessionMessage.decode([SessionMessage.Kind.initialRequest.rawValue] + Array(json.utf8)); return nil } catch { return error }
        }
        let head = #"{"v":1,"client_session_id":"c","authorization_token":null,"application_session":"#
        #expect(decode(head + #"{"application":"echo","action":"begin","client_tcp_stream":1}}"#) == nil)
        #expect(decode(head + #"{"application":"echo","request":{"a":1},"action":"begin","client_tcp_stream":1}}"#) == nil)
        #expect(decode(head + #"{"application":"echo","token":"usp1p.x","action":"begin"}}"#)?.detail.contains("exclude each other") == true)
        #expect(decode(head + #"{"application":"echo","action":"end"}}"#)?.detail.contains("only for action") == true)
        #expect(decode(head + #"{"token":"usp1p.x","request":{},"action":"begin"}}"#)?.detail.contains("goes only with") == true)
        #expect(decode(head + #"{"application":"","action":"begin"}}"#)?.detail.contains("empty application name") == true)
        #expect(decode(head + #"{"application":"a\u0001b","action":"begin"}}"#)?.detail.contains("control character") == true)
        #expect(decode(head + #"{"action":"begin"}}"#)?.detail.contains("missing field \"token\"") == true)
        #expect(decode(head + #"{"application":"echo","request":[],"action":"begin"}}"#)?.code == .malformedMessage)
        // Round trip of the by-name form.
        let request = InitialRequest(clientSessionID: "c", applicationSession: ApplicationSessionRequest(application: "echo", request: ["k": "v"], clientTCPStream: 1))
        let bytes = try SessionMessage.initialRequest(request).encode()
        #expect(try SessionMessage.decode(bytes) == .initialRequest(request))
    }
}
