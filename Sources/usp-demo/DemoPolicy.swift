import Synchronization
import USPCore

/// The demo server's policy, in memory: one user with a password, channel-bound tokens (the
/// server keeps only their public keys), application tokens bound to the client's address, and
/// one replay guard for early data. Shared by every connection thread, hence the lock.
final class DemoPolicy: ServerSessionDelegate, Sendable {
    struct StoredToken {
        let publicKey: [UInt8]
        let identity: Identity?
        /// nil for an authorization token.
        let application: String?
        /// Application tokens only work from the address they were issued to.
        let peerAddress: String?
        let authorizationTokenID: TokenProof.TokenID?
        let expiresAt: UInt64
        var revoked = false
    }

    struct State {
        var tokens: [TokenProof.TokenID: StoredToken] = [:]
        var replay = ReplayGuard(window: 120)
    }

    static let authorizationLifetime: UInt64 = 3600
    static let applicationLifetime: UInt64 = 60

    private let users: [String: String]
    private let state = Mutex(State())
    private let random = SystemRandomSource()

    init(users: [String: String]) {
        self.users = users
    }

    func menu(for identity: Identity?, context: SessionContext) -> ApplicationMenu {
        var applications: [ServiceIndex: ApplicationOffer] = [:]
        for entry in DemoCatalog.entries where !entry.requiresLogin || identity != nil {
            applications[entry.index] = entry.offer
        }
        let authentication: AuthenticationOffer = identity == nil
            ? .methods([AuthenticationMethod(method: "password", expectedRequestBody: ["user": "string", "password": "string"])])
            : .tokenInvalidation(TokenInvalidationOffer())
        return ApplicationMenu(serverSessionID: context.serverSessionID, authentication: authentication, applications: applications)
    }

    func authenticate(fields: [String: JSONValue], context: SessionContext) -> Result<AuthorizationGrant, USPError> {
        guard case .string(let user)? = fields["user"], case .string(let password)? = fields["password"] else {
            return .failure(USPError(.invalidRequestBody, "user and password required"))
        }
        guard let expected = users[user], ConstantTime.equal(Array(expected.utf8), Array(password.utf8)) else {
            return .failure(USPError(.authenticationFailed, "wrong user or password for \(user)"))
        }
        let who = Identity(name: user)
        let issued = store(identity: who, application: nil, peerAddress: nil, authorizationTokenID: nil,
                           expiresAt: context.now.seconds + Self.authorizationLifetime)
        return .success(AuthorizationGrant(identity: who, token: issued.secret, tokenID: issued.id))
    }

    func validateAuthorizationToken(_ presentation: TokenProof.Presentation, context: SessionContext)
        -> Result<(Identity, TokenProof.TokenID), USPError> {
        guard let token = state.withLock({ $0.tokens[presentation.id] }), token.application == nil, let who = token.identity else {
            return .failure(USPError(.authorizationInvalid, "unknown authorization token"))
        }
        guard !token.revoked else { return .failure(USPError(.tokenRevoked)) }
        guard token.expiresAt > context.now.seconds else { return .failure(USPError(.tokenExpired)) }
        guard presentation.verify(publicKey: token.publicKey, handshakeHash: context.channelBinding) else {
            return .failure(USPError(.authorizationInvalid, "presentation not bound to this channel"))
        }
        return .success((who, presentation.id))
    }

    func issueApplicationToken(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue],
                               authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<String, USPError> {
        let issued = store(identity: context.identity, application: entry.name, peerAddress: context.peerAddress,
                           authorizationTokenID: authorizationTokenID, expiresAt: context.now.seconds + Self.applicationLifetime)
        return .success(issued.secret)
    }

    func validateApplicationToken(_ presentation: TokenProof.Presentation, context: SessionContext) -> Result<ApplicationGrant, USPError> {
        let (token, parentRevoked) = state.withLock { s in
            let token = s.tokens[presentation.id]
            return (token, token?.authorizationTokenID.flatMap { s.tokens[$0]?.revoked } ?? false)
        }
        guard let token, let application = token.application else { return .failure(USPError(.tokenInvalid, "unknown token")) }
        guard !token.revoked, !parentRevoked else { return .failure(USPError(.tokenRevoked)) }
        guard token.expiresAt > context.now.seconds else { return .failure(USPError(.tokenExpired)) }
        guard token.peerAddress == context.peerAddress else {
            return .failure(USPError(.tokenWrongAddress, "issued to \(token.peerAddress ?? "?"), presented from \(context.peerAddress)"))
        }
        guard presentation.verify(publicKey: token.publicKey, handshakeHash: context.channelBinding) else {
            return .failure(USPError(.tokenInvalid, "presentation not bound to this channel"))
        }
        return .success(ApplicationGrant(application: application, tokenID: presentation.id,
                                         authorizationTokenID: token.authorizationTokenID, identity: token.identity))
    }

    func invalidateTokens(_ list: [String], context: SessionContext) -> Result<[TokenProof.TokenID], USPError> {
        let ids = list.map { (try? TokenProof.tokenID(secret: $0)) ?? TokenProof.TokenID(text: $0) }
        return state.withLock { s in
            var done: [TokenProof.TokenID] = []
            for id in ids {
                guard let id, let token = s.tokens[id], token.identity == context.identity else {
                    return .failure(USPError(.tokenInvalid, "unknown token, or not yours"))
                }
                done.append(id)
            }
            for id in done { s.tokens[id]!.revoked = true }
            return .success(done)
        }
    }

    func performAction(_ action: String, grant: ApplicationGrant, parameters: [String: JSONValue]?,
                       context: SessionContext) -> Result<JSONValue, USPError> {
        .failure(USPError(.unknownAction, "the demo applications define no actions"))
    }

    func admitEarlyData(clientEphemeral: [UInt8], timestamp: Timestamp, now: Timestamp) -> Bool {
        state.withLock { $0.replay.check(ephemeral: clientEphemeral, timestamp: timestamp, now: now) == .accept }
    }

    private func store(identity: Identity?, application: String?, peerAddress: String?,
                       authorizationTokenID: TokenProof.TokenID?, expiresAt: UInt64) -> TokenProof.Issued {
        let issued = TokenProof.issue(random: random)
        let token = StoredToken(publicKey: issued.publicKey, identity: identity, application: application, peerAddress: peerAddress,
                                authorizationTokenID: authorizationTokenID, expiresAt: expiresAt)
        state.withLock { $0.tokens[issued.id] = token }
        return issued
    }
}
