import USPCore

/// An in-memory `ServerSessionDelegate` with enough behaviour for a fuzzed client to reach every
/// branch of the request service: a public menu (`echo`, `time`) and a secure one (`ssh`), password
/// logins (alice / "correct horse"), channel-bound tokens kept as public keys, application
/// actions, and the early-data replay guard. A harness makes a new one per input.
public final class FuzzPolicy: ServerSessionDelegate, @unchecked Sendable {
    struct StoredToken {
        let publicKey: [UInt8]
        let identity: Identity?
        let application: String?
        var revoked = false
    }

    public static let applications: [(index: UInt32, offer: ApplicationOffer, secure: Bool)] = [
        (1, ApplicationOffer(name: "echo", description: "echoes", expectedRequestBody: [:]), false),
        (2, ApplicationOffer(name: "time", description: "says the time", expectedRequestBody: ["zone": "string?"]), false),
        (3, ApplicationOffer(name: "ssh", description: "secure shell", expectedRequestBody: ["user": "string", "port": "integer?"]), true),
    ]

    var tokens: [TokenProof.TokenID: StoredToken] = [:]
    var replay = ReplayGuard(window: 120, capacity: 64)
    let random: any RandomSource

    public init(random: any RandomSource) { self.random = random }

    public func menu(for identity: Identity?, context: SessionContext) -> ApplicationMenu {
        var apps: [ServiceIndex: ApplicationOffer] = [:]
        for a in Self.applications where !a.secure || identity != nil { apps[ServiceIndex(a.index)] = a.offer }
        let methods = [AuthenticationMethod(method: "password", expectedRequestBody: ["user": "string", "password": "string"])]
        let auth: AuthenticationOffer = identity == nil ? .methods(methods) : .tokenInvalidation(TokenInvalidationOffer())
        return ApplicationMenu(serverSessionID: context.serverSessionID, authentication: auth, applications: apps)
    }

    public func authenticate(fields: [String: JSONValue], context: SessionContext) -> Result<AuthorizationGrant, USPError> {
        guard case .string(let user)? = fields["user"], case .string(let password)? = fields["password"] else {
            return .failure(USPError(.invalidRequestBody, "user and password required"))
        }
        guard user == "alice", ConstantTime.equal(Array(password.utf8), Array("correct horse".utf8)) else {
            return .failure(USPError(.authenticationFailed, "bad password for \(user)"))
        }
        let who = Identity(name: user, groups: ["staff"])
        let issued = TokenProof.issue(random: random)
        tokens[issued.id] = StoredToken(publicKey: issued.publicKey, identity: who, application: nil)
        return .success(AuthorizationGrant(identity: who, token: issued.secret, tokenID: issued.id))
    }

    public func validateAuthorizationToken(_ p: TokenProof.Presentation, context: SessionContext) -> Result<(Identity, TokenProof.TokenID), USPError> {
        guard let t = tokens[p.id], t.application == nil, let who = t.identity else { return .failure(USPError(.authorizationInvalid)) }
        guard !t.revoked else { return .failure(USPError(.tokenRevoked)) }
        guard p.verify(publicKey: t.publicKey, handshakeHash: context.channelBinding) else { return .failure(USPError(.authorizationInvalid)) }
        return .success((who, p.id))
    }

    public func issueApplicationToken(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue],
                                      authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<String, USPError> {
        let issued = TokenProof.issue(random: random)
        tokens[issued.id] = StoredToken(publicKey: issued.publicKey, identity: context.identity, application: entry.name)
        return .success(issued.secret)
    }

    public func validateApplicationToken(_ p: TokenProof.Presentation, context: SessionContext) -> Result<ApplicationGrant, USPError> {
        guard let t = tokens[p.id], let app = t.application else { return .failure(USPError(.tokenInvalid)) }
        guard !t.revoked else { return .failure(USPError(.tokenRevoked)) }
        guard p.verify(publicKey: t.publicKey, handshakeHash: context.channelBinding) else { return .failure(USPError(.tokenInvalid)) }
        return .success(ApplicationGrant(application: app, tokenID: p.id, authorizationTokenID: nil, identity: t.identity))
    }

    public func invalidateTokens(_ list: [String], context: SessionContext) -> Result<[TokenProof.TokenID], USPError> {
        // A secret (`usp1.…`) or a token ID; all must be known.
        let ids = list.compactMap { text in ((try? TokenProof.tokenID(secret: text)) ?? TokenProof.TokenID(text: text)).flatMap { tokens[$0] == nil ? nil : $0 } }
        guard ids.count == list.count else { return .failure(USPError(.tokenInvalid, "unknown token")) }
        for id in ids { tokens[id]?.revoked = true }
        return .success(ids)
    }

    public func performAction(_ action: String, grant: ApplicationGrant, parameters: [String: JSONValue]?,
                              context: SessionContext) -> Result<JSONValue, USPError> {
        guard action == "status" else { return .failure(USPError(.unknownAction)) }
        return .success(.object(["application": .string(grant.application)]))
    }

    public func admitEarlyData(clientEphemeral: [UInt8], timestamp: Timestamp, now: Timestamp) -> Bool {
        replay.check(ephemeral: clientEphemeral, timestamp: timestamp, now: now) == .accept
    }
}
