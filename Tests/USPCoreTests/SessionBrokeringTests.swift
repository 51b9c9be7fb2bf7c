import Testing
@testable import USPCore
import USPTestSupport

/// Connection brokering in the core (docs/PROTOCOL.md §6.3.1): the `client_ip` field of a
/// `service_request`, its format rules, and who the server asks about it. Whether a caller may
/// broker is policy's; the core only refuses a caller who has not logged in.
@Suite struct SessionBrokeringTests {
    // MARK: - The field

    @Test func clientIPRoundTripsAndIsAbsentWhenNotBrokering() throws {
        let brokered = ServiceRequest(clientSessionID: "c-1", services: [ServiceIndex(1): [:]], clientIP: "2001:db8::7")
        let bytes = try SessionMessage.serviceRequest(brokered).encode()
        #expect(String(decoding: bytes.dropFirst(), as: UTF8.self).contains(#""client_ip":"2001:db8::7""#))
        #expect(try SessionMessage.decode(bytes) == .serviceRequest(brokered))

        let plain = ServiceRequest(clientSessionID: "c-1", services: [ServiceIndex(1): [:]])
        let text = String(decoding: try SessionMessage.serviceRequest(plain).encode().dropFirst(), as: UTF8.self)
        #expect(!text.contains("client_ip"))
        // null means absent.
        let decoded = try SessionMessage.decode(messageBytes(.serviceRequest,
            #"{"authorization_token":null,"client_ip":null,"client_session_id":"c-1","requested_services":{"1":{}}}"#))
        #expect(decoded == .serviceRequest(plain))
    }

    @Test(arguments: [
        (#""10.0.0.1%eth0""#, "only hex digits"),
        (#""[::1]""#, "only hex digits"),
        (#""10.0.0.0/8""#, "only hex digits"),
        (#""host.example""#, "only hex digits"),
        (#""1""#, "expected 2…45"),
        (#""""#, "expected 2…45"),
        ("\"" + String(repeating: "a", count: 46) + "\"", "expected 2…45"),
        ("7", "client_ip: expected string"),
    ])
    func aMalformedClientIPIsAMalformedMessage(value: String, detail: String) {
        expectDecodeError(.serviceRequest, #"{"authorization_token":null,"client_ip":\#(value),"client_session_id":"c-1","requested_services":{"1":{}}}"#,
                          .malformedMessage, detail)
    }

    @Test func anEncoderRefusesWhatADecoderWould() {
        let bad = ServiceRequest(clientSessionID: "c-1", services: [ServiceIndex(1): [:]], clientIP: "fe80::1%lo")
        expectEncodeError(.serviceRequest(bad), .malformedMessage, "client_ip")
    }

    // MARK: - The server

    @Test func beforeLoginEveryIndexAnswersTheTokenProblemEvenAPublicOne() throws {
        let policy = TestPolicy()
        policy.brokers = ["alice"]
        var pair = SessionPair(.ik, policy: policy)
        try pair.establish()
        let reply = try pair.request([ServiceIndex(1): [:], ServiceIndex(3): ["user": "ann"]], clientIP: "198.51.100.4")
        #expect(reply.results[ServiceIndex(1)] == .error(WireError(.authorizationMissing)))
        #expect(reply.results[ServiceIndex(3)] == .error(WireError(.authorizationMissing)))
        // Policy was never asked: the refusal is the core's, and nothing was issued.
        #expect(policy.brokeredFor.isEmpty)
        #expect(policy.issueContexts.isEmpty)
        // Without client_ip the public application is granted as before.
        _ = try pair.token(1)
    }

    @Test func aLoggedInCallerIsAskedAboutAndTheTokenWorksOnlyFromTheAddress() throws {
        let policy = TestPolicy()
        policy.brokers = ["alice"]
        var broker = SessionPair(.ik, policy: policy, peerAddress: "192.0.2.10", seed: 60)
        try broker.establish()
        _ = try broker.login()
        let reply = try broker.request([ServiceIndex(3): ["user": "ann"]], clientIP: "198.51.100.4")
        guard case .token(let token)? = reply.results[ServiceIndex(3)] else {
            Issue.record("no brokered token: \(reply)")
            return
        }
        #expect(policy.brokeredFor == ["198.51.100.4"])
        #expect(policy.issueContexts.last?.identity?.name == "alice")
        #expect(policy.issueContexts.last?.peerAddress == "192.0.2.10", "policy sees who asks, from where")

        // The beneficiary, with no login, begins with the token from its own address.
        var beneficiary = SessionPair(.ik, policy: policy, peerAddress: "198.51.100.4", seed: 61)
        try beneficiary.establish(ClientStart(application: .init(token: token)))
        #expect(beneficiary.serverSeen.contains(.opened(1, "ssh")))
        #expect(beneficiary.grants[1]?.identity?.name == "alice")

        // From the broker's address the same token is refused.
        var again = SessionPair(.ik, policy: policy, peerAddress: "192.0.2.10", seed: 62)
        try again.establish(ClientStart(application: .init(token: token)))
        #expect(again.clientSeen.contains(.appReply("token_wrong_address")))
    }

    @Test func aBadAuthorizationTokenBrokersNothingEvenOnALoggedInSession() throws {
        let policy = TestPolicy()
        policy.brokers = ["alice"]
        var pair = SessionPair(.ik, policy: policy)
        try pair.establish()
        _ = try pair.login()
        // Without the field it would run as the session's login; brokering refuses instead.
        let forged = "usp1p." + Base64URL.encode([UInt8](repeating: 7, count: 80))
        let reply = try pair.request([ServiceIndex(1): [:]], authorizationToken: nil, clientIP: "198.51.100.4")
        #expect(reply.results[ServiceIndex(1)].map { if case .token = $0 { true } else { false } } == true)
        let bad = ServiceRequest(clientSessionID: pair.client.clientSessionID, authorizationToken: forged,
                                 services: [ServiceIndex(1): [:]], clientIP: "198.51.100.4")
        try pair.clientSends([try messageFrame(.serviceRequest(bad))])
        #expect(pair.serviceReplies.last?.results[ServiceIndex(1)] == .error(WireError(.authorizationInvalid)))
        #expect(policy.brokeredFor == ["198.51.100.4"], "policy was asked once, for the good request")
    }

    @Test func aRefusalCarriesPolicysSentenceOnlyForTheBrokersOwnLimits() throws {
        let policy = TestPolicy()
        var pair = SessionPair(.ik, policy: policy)
        try pair.establish()
        _ = try pair.login()
        // alice is not a broker here: the default answer, with the policy's sentence.
        let reply = try pair.request([ServiceIndex(1): [:]], clientIP: "198.51.100.4")
        #expect(reply.results[ServiceIndex(1)] == .error(WireError(.brokerNotAllowed, "alice may not broker")))
        // An index not on the menu is unknown_index, before policy is asked.
        let unknown = try pair.request([ServiceIndex(9): [:]], clientIP: "198.51.100.4")
        #expect(unknown.results[ServiceIndex(9)] == .error(WireError(.unknownIndex)))
        #expect(policy.brokeredFor == ["198.51.100.4"])
    }

    /// A delegate that does not implement brokering refuses it.
    @Test func theDefaultDelegateRefusesBrokering() {
        struct Plain: ServerSessionDelegate {
            func menu(for identity: Identity?, context: SessionContext) -> ApplicationMenu { ApplicationMenu(serverSessionID: "s") }
            func authenticate(fields: [String: JSONValue], context: SessionContext) -> Result<AuthorizationGrant, USPError> { .failure(USPError(.authenticationFailed)) }
            func validateAuthorizationToken(_ p: TokenProof.Presentation, context: SessionContext) -> Result<(Identity, TokenProof.TokenID), USPError> { .failure(USPError(.authorizationInvalid)) }
            func issueApplicationToken(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue],
                                       authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<String, USPError> { .failure(USPError(.unknownIndex)) }
            func validateApplicationToken(_ p: TokenProof.Presentation, context: SessionContext) -> Result<ApplicationGrant, USPError> { .failure(USPError(.tokenInvalid)) }
            func invalidateTokens(_ tokens: [String], context: SessionContext) -> Result<[TokenProof.TokenID], USPError> { .failure(USPError(.tokenInvalid)) }
            func performAction(_ action: String, grant: ApplicationGrant, parameters: [String: JSONValue]?, context: SessionContext) -> Result<JSONValue, USPError> { .failure(USPError(.unknownAction)) }
            func admitEarlyData(clientEphemeral: [UInt8], timestamp: Timestamp, now: Timestamp) -> Bool { false }
        }
        let context = SessionContext(peerAddress: "192.0.2.1", pattern: .ik, clientStatic: nil, channelBinding: [], isEarlyData: false,
                                     serverSessionID: "s", clientSessionID: "c", identity: Identity(name: "alice"), now: Timestamp(seconds: 1))
        let result = Plain().issueBrokeredApplicationToken(index: ServiceIndex(1), entry: ApplicationOffer(name: "echo", expectedRequestBody: [:]),
                                                           request: [:], clientIP: "192.0.2.9", authorizationTokenID: nil, context: context)
        guard case .failure(let e) = result else { Issue.record("brokering granted"); return }
        #expect(e.code == .brokerNotAllowed)
    }
}
