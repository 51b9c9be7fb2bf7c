import USPCore

/// An in-memory `ServerSessionDelegate` for tests: users with passwords, channel-bound tokens kept
/// as public keys, address-bound application tokens, a replay guard, and public and secure
/// applications. Everything it decides is in plain properties, so a test can read or change them;
/// it logs what it was asked (`logins`, `requests`, `issueContexts`, `actions`).
///
/// `@unchecked Sendable`: there is no lock; each user drives one instance from one place (a test's
/// own task, or a server's single event loop).
public final class TestPolicy: ServerSessionDelegate, @unchecked Sendable {
    public struct StoredToken {
        public let publicKey: [UInt8]
        public let identity: Identity?
        public let application: String?
        public let peerAddress: String?
        public let authorizationTokenID: TokenProof.TokenID?
        public var revoked = false
        public var expiresAt: UInt64
    }

    public typealias Application = (index: UInt32, offer: ApplicationOffer, secure: Bool)

    /// `echo` and `time` for everyone, `ssh` (secure) once logged in.
    public static let standardApplications: [Application] = [
        (1, ApplicationOffer(name: "echo", description: "echoes", expectedRequestBody: [:]), false),
        (2, ApplicationOffer(name: "time", description: "says the time", expectedRequestBody: ["zone": "string?"]), false),
        (3, ApplicationOffer(name: "ssh", description: "secure shell", expectedRequestBody: ["user": "string"]), true),
    ]

    public var users: [String: String] = ["alice": "correct horse"]
    /// Client static keys allowed to log in with `noise_static` (when offered), and whose they are.
    public var authorizedKeys: [[UInt8]: String] = [:]
    public var tokens: [TokenProof.TokenID: StoredToken] = [:]
    public var replay = ReplayGuard(window: 120)
    /// The menu's applications: a secure one is listed only to a logged-in caller.
    public var applications: [Application]
    /// Where token keys come from.
    public let random: any RandomSource
    /// When true the menu offers `noise_static` after `password`, and `authenticate` goes by
    /// `auth_method` (a missing or unknown one is `unknown_auth_method`). When false only `password`
    /// is offered, and every login is checked as a password whatever `auth_method` says.
    public let offersNoiseStatic: Bool
    /// The `application_session` actions `performAction` answers (with the grant's application);
    /// any other is `unknown_action`.
    public let answeredActions: Set<String>
    public var tokenLifetime: UInt64 = 3600
    /// When true, password logins are "slow": the session defers them to its shell (the test).
    public var slowPasswords = false

    /// Who logged in, in order.
    public var logins: [String] = []
    /// The application and request body of every application token issued.
    public var requests: [(String, [String: JSONValue])] = []
    /// The context of every application token issued, for checks on what policy was told.
    public var issueContexts: [SessionContext] = []
    /// The actions answered, in order.
    public var actions: [String] = []

    public init(random: any RandomSource = SeededRandom(seed: 99), offersNoiseStatic: Bool = false,
                answeredActions: Set<String> = ["status"], applications: [Application] = TestPolicy.standardApplications) {
        self.random = random
        self.offersNoiseStatic = offersNoiseStatic
        self.answeredActions = answeredActions
        self.applications = applications
    }

    public func menu(for identity: Identity?, context: SessionContext) -> ApplicationMenu {
        var apps: [ServiceIndex: ApplicationOffer] = [:]
        for a in applications where !a.secure || identity != nil { apps[ServiceIndex(a.index)] = a.offer }
        var methods = [AuthenticationMethod(method: "password", expectedRequestBody: ["user": "string", "password": "string"])]
        if offersNoiseStatic { methods.append(AuthenticationMethod(method: "noise_static", expectedRequestBody: [:])) }
        let auth: AuthenticationOffer = identity == nil ? .methods(methods) : .tokenInvalidation(TokenInvalidationOffer())
        return ApplicationMenu(serverSessionID: context.serverSessionID, authentication: auth, applications: apps)
    }

    public func authenticate(fields: [String: JSONValue], context: SessionContext) -> Result<AuthorizationGrant, USPError> {
        let who: Identity
        switch offersNoiseStatic ? fields["auth_method"] : JSONValue.string("password") {
        case .string("noise_static")?:
            guard let key = context.clientStatic, let name = authorizedKeys[key] else {
                return .failure(USPError(.authenticationFailed, "unknown client key"))
            }
            who = Identity(name: name)
        case .string("password")?:
            guard case .string(let user)? = fields["user"], case .string(let password)? = fields["password"] else {
                return .failure(USPError(.invalidRequestBody, "user and password required"))
            }
            guard let expected = users[user], ConstantTime.equal(Array(expected.utf8), Array(password.utf8)) else {
                return .failure(USPError(.authenticationFailed, "bad password for \(user)"))
            }
            who = Identity(name: user)
        default:
            return .failure(USPError(.unknownMethod))
        }
        logins.append(who.name)
        let issued = TokenProof.issue(random: random)
        tokens[issued.id] = StoredToken(publicKey: issued.publicKey, identity: who, application: nil, peerAddress: nil,
                                        authorizationTokenID: nil, expiresAt: context.now.seconds + tokenLifetime)
        return .success(AuthorizationGrant(identity: who, token: issued.secret, tokenID: issued.id))
    }

    public func validateAuthorizationToken(_ p: TokenProof.Presentation, context: SessionContext) -> Result<(Identity, TokenProof.TokenID), USPError> {
        guard let t = tokens[p.id], t.application == nil, let who = t.identity else { return .failure(USPError(.authorizationInvalid)) }
        guard !t.revoked else { return .failure(USPError(.tokenRevoked)) }
        guard t.expiresAt > context.now.seconds else { return .failure(USPError(.tokenExpired)) }
        guard p.verify(publicKey: t.publicKey, handshakeHash: context.channelBinding) else { return .failure(USPError(.authorizationInvalid)) }
        return .success((who, p.id))
    }

    public func issueApplicationToken(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue],
                                      authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<String, USPError> {
        requests.append((entry.name, request))
        issueContexts.append(context)
        let issued = TokenProof.issue(random: random)
        tokens[issued.id] = StoredToken(publicKey: issued.publicKey, identity: context.identity, application: entry.name,
                                        peerAddress: context.peerAddress, authorizationTokenID: authorizationTokenID,
                                        expiresAt: context.now.seconds + 60)
        return .success(issued.secret)
    }

    /// Identities that may broker (connection brokering), for any address; nobody by default,
    /// so the refusal is `broker_not_allowed`.
    public var brokers: Set<String> = []
    /// The `client_ip` of every brokering request policy was asked about, in order.
    public var brokeredFor: [String] = []

    public func issueBrokeredApplicationToken(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue], clientIP: String,
                                              authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<String, USPError> {
        brokeredFor.append(clientIP)
        guard let who = context.identity, brokers.contains(who.name) else {
            return .failure(USPError(.brokerNotAllowed, "\(context.identity?.name ?? "nobody") may not broker"))
        }
        requests.append((entry.name, request))
        issueContexts.append(context)
        let issued = TokenProof.issue(random: random)
        tokens[issued.id] = StoredToken(publicKey: issued.publicKey, identity: who, application: entry.name, peerAddress: clientIP,
                                        authorizationTokenID: authorizationTokenID, expiresAt: context.now.seconds + 60)
        return .success(issued.secret)
    }

    public func validateApplicationToken(_ p: TokenProof.Presentation, context: SessionContext) -> Result<ApplicationGrant, USPError> {
        guard let t = tokens[p.id], let app = t.application else { return .failure(USPError(.tokenInvalid)) }
        guard !t.revoked, !(t.authorizationTokenID.map { tokens[$0]?.revoked ?? false } ?? false) else { return .failure(USPError(.tokenRevoked)) }
        guard t.expiresAt > context.now.seconds else { return .failure(USPError(.tokenExpired)) }
        guard t.peerAddress == context.peerAddress else { return .failure(USPError(.tokenWrongAddress)) }
        guard p.verify(publicKey: t.publicKey, handshakeHash: context.channelBinding) else { return .failure(USPError(.tokenInvalid)) }
        return .success(ApplicationGrant(application: app, tokenID: p.id, authorizationTokenID: t.authorizationTokenID, identity: t.identity))
    }

    public func invalidateTokens(_ list: [String], context: SessionContext) -> Result<[TokenProof.TokenID], USPError> {
        var ids: [TokenProof.TokenID] = []
        for text in list {
            let id = (try? TokenProof.tokenID(secret: text)) ?? TokenProof.TokenID(text: text)
            guard let id, tokens[id] != nil else { return .failure(USPError(.tokenInvalid, "unknown token")) }
            tokens[id]!.revoked = true
            ids.append(id)
        }
        return .success(ids)
    }

    public func performAction(_ action: String, grant: ApplicationGrant, parameters: [String: JSONValue]?,
                              context: SessionContext) -> Result<JSONValue, USPError> {
        guard answeredActions.contains(action) else { return .failure(USPError(.unknownAction)) }
        actions.append(action)
        return .success(.object(["application": .string(grant.application)]))
    }

    public func admitEarlyData(clientEphemeral: [UInt8], timestamp: Timestamp, now: Timestamp) -> Bool {
        replay.check(ephemeral: clientEphemeral, timestamp: timestamp, now: now) == .accept
    }

    public func authenticationIsSlow(fields: [String: JSONValue]) -> Bool { slowPasswords && fields["password"] != nil }
}
