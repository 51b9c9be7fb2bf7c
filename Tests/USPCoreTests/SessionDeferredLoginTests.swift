import Testing
@testable import USPCore
import USPTestSupport

/// A login the delegate calls slow (a password hash) is handed to the shell: the session asks,
/// keeps every later input unprocessed and in order, and goes on when the outcome comes back.
@Suite struct SessionDeferredLoginTests {
    static func loginRequest(_ pair: SessionPair, password: String, also services: [ServiceIndex: [String: JSONValue]] = [:]) throws -> Frame {
        let request = ServiceRequest(clientSessionID: pair.client.clientSessionID,
                                     authentication: .credentials(["user": "alice", "password": .string(password)]), services: services)
        return try messageFrame(.serviceRequest(request))
    }

    @Test func theLoginWaitsForTheShellAndLaterInputWaitsForTheLogin() throws {
        let policy = TestPolicy()
        policy.slowPasswords = true
        var pair = SessionPair.ik(policy: policy)
        try pair.establish()
        // One record: the login (with a request for echo at index 1), then a PING behind it.
        let frames = [try Self.loginRequest(pair, password: "correct horse", also: [ServiceIndex(1): [:]]), Frame.ping(41)]
        try pair.client._sendRawRecord(frames.flatMap(\.encoded))
        pair.deliverToServer(pair.client.drainOutbound { Array($0) })
        #expect(pair.serverSeen.last == .authenticationRequested("alice"))
        #expect(pair.server.isAwaitingAuthentication)
        #expect(pair.server.outboundByteCount == 0)   // no reply, and the PING is not answered yet
        // A later record (another PING) waits too.
        try pair.client._sendRawRecord(Frame.ping(42).encoded)
        pair.deliverToServer(pair.client.drainOutbound { Array($0) })
        #expect(pair.server.outboundByteCount == 0)

        // The shell's answer: the policy's own check, run "elsewhere".
        let fields: [String: JSONValue] = ["user": "alice", "password": "correct horse"]
        var seen: [Seen] = []
        pair.server.completeAuthentication(policy.authenticate(fields: fields, context: try #require(pair.policy.lastContext(pair))),
                                           now: pair.now, delegate: policy) { seen.append(Seen($0)) }
        #expect(seen == [.authenticated("alice")])
        #expect(!pair.server.isAwaitingAuthentication)
        // Reply (token at 0 and 1), new menu, then the two PONGs, in that order.
        let answer = try pair.takeServerRecords().flatMap(\.frames)
        let kinds = answer.compactMap { f -> String? in
            switch f {
            case .message(let kind, _): SessionMessage.Kind(rawValue: kind).map { "\($0.name)" }
            case .pong(let v): "pong \(v)"
            default: nil
            }
        }
        #expect(kinds == ["service_reply", "menu", "pong 41", "pong 42"])
        #expect(pair.server.identity?.name == "alice")
    }

    @Test func aFailedSlowLoginIsAnsweredAndTheSessionGoesOn() throws {
        let policy = TestPolicy()
        policy.slowPasswords = true
        var pair = SessionPair.ik(policy: policy)
        try pair.establish()
        try pair.clientSends([try Self.loginRequest(pair, password: "wrong")])
        #expect(pair.server.isAwaitingAuthentication)
        pair.server.completeAuthentication(.failure(USPError(.authenticationFailed, "bad password")), now: pair.now, delegate: policy) { _ in }
        pair.pump()
        #expect(pair.clientSeen.contains(.reply([0: "authentication_failed"])))
        #expect(pair.server.state == .established)
        // The session still works: a token for echo.
        _ = try pair.token(1)
    }

    @Test func aSessionClosedMeanwhileIgnoresTheOutcome() throws {
        let policy = TestPolicy()
        policy.slowPasswords = true
        var pair = SessionPair.ik(policy: policy)
        try pair.establish()
        try pair.clientSends([try Self.loginRequest(pair, password: "correct horse")])
        pair.server.close(code: .shuttingDown) { _ in }
        var seen: [Seen] = []
        pair.server.completeAuthentication(.failure(USPError(.authenticationFailed)), now: pair.now, delegate: policy) { seen.append(Seen($0)) }
        #expect(seen.isEmpty)
        #expect(pair.server.state == .closed)
    }
}

extension TestPolicy {
    /// The context a deferred login was announced with: rebuilt here from the session's facts
    /// (the test plays the shell, which would have kept it from the event).
    func lastContext(_ pair: SessionPair) -> SessionContext? {
        guard let h = pair.server.handshake else { return nil }
        return SessionContext(peerAddress: "192.0.2.10", pattern: h.pattern, clientStatic: h.remoteStatic, channelBinding: h.handshakeHash,
                              isEarlyData: false, serverSessionID: pair.server.serverSessionID, clientSessionID: pair.client.clientSessionID,
                              identity: nil, now: pair.now)
    }
}
