/// Who the client is, as policy decided it.
public struct Identity: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public let groups: [String]
    public init(name: String, groups: [String] = []) {
        self.name = name
        self.groups = groups
    }
    public var description: String { name }
}

/// Facts about the connection that policy needs. The core fills it; the delegate only reads it.
public struct SessionContext: Sendable {
    /// The client's address as the I/O shell saw it (e.g. "192.0.2.7" or "2001:db8::1").
    public let peerAddress: String
    public let pattern: HandshakeLayout.Pattern
    /// The client's static key, proven by the handshake (IK and XX); nil in NK.
    public let clientStatic: [UInt8]?
    /// What proofs in the current frame must be bound to: the final `h` for frames in records,
    /// or `h` before message 1's payload for early frames (docs/PROTOCOL.md §3.7).
    public let channelBinding: [UInt8]
    /// True while early frames of message 1 are processed.
    public let isEarlyData: Bool
    public let serverSessionID: String
    public let clientSessionID: String?
    /// The identity this session has authenticated as, if any.
    public let identity: Identity?
    public let now: Timestamp
}

/// An authorization granted at index 0.
public struct AuthorizationGrant: Sendable {
    public let identity: Identity
    /// The token secret for the client (`TokenProof.Issued.secret`).
    public let token: String
    public let tokenID: TokenProof.TokenID
    public init(identity: Identity, token: String, tokenID: TokenProof.TokenID) {
        self.identity = identity
        self.token = token
        self.tokenID = tokenID
    }
}

/// What a valid application token lets its holder open.
public struct ApplicationGrant: Hashable, Sendable {
    /// The application's name as registered.
    public let application: String
    public let tokenID: TokenProof.TokenID
    /// The authorization token the application token was issued under, if any.
    public let authorizationTokenID: TokenProof.TokenID?
    public let identity: Identity?
    public init(application: String, tokenID: TokenProof.TokenID, authorizationTokenID: TokenProof.TokenID?, identity: Identity?) {
        self.application = application
        self.tokenID = tokenID
        self.authorizationTokenID = authorizationTokenID
        self.identity = identity
    }
}

/// Policy, asked by the server session and never decided in the core: which menu an identity
/// sees, whether a credential or token is good for this peer, and token issue and invalidation.
/// Every method returns a `USPError` whose code goes to the client beside a short message.
public protocol ServerSessionDelegate {
    /// The menu for `identity` (nil: not logged in). Index 0 lists authentication methods before
    /// login and offers token invalidation after it; indices 1… are the applications this caller may see.
    func menu(for identity: Identity?, context: SessionContext) -> ApplicationMenu

    /// Checks the authentication fields sent at index 0 and issues an authorization token.
    func authenticate(fields: [String: JSONValue], context: SessionContext) -> Result<AuthorizationGrant, USPError>

    /// Checks an authorization token presentation (`usp1p.…`) for this peer and channel.
    func validateAuthorizationToken(_ presentation: TokenProof.Presentation, context: SessionContext) -> Result<(Identity, TokenProof.TokenID), USPError>

    /// Issues an application token for menu entry `index` with an already validated request body.
    func issueApplicationToken(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue],
                               authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<String, USPError>

    /// Connection brokering (a `service_request` with `client_ip`): issues an application token
    /// for menu entry `index` that only the client at `clientIP` may use, on behalf of the caller
    /// (`context.identity`, never nil here: the core answers a caller who has not logged in with
    /// the token problem). Policy decides who may broker, for which addresses, how often and for
    /// how long. The default refuses with `broker_not_allowed`.
    func issueBrokeredApplicationToken(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue], clientIP: String,
                                       authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<String, USPError>

    /// A begin by name: issues an application token for menu entry `index` (request body already
    /// validated) and grants it to this session at once. The token never leaves the server, so
    /// policy may store it without waiting for the disk: the stream it opens is recorded right
    /// after. The default issues with `issueApplicationToken`, presents the token over this
    /// channel and checks it with `validateApplicationToken`.
    func grantApplicationByName(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue],
                                authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<ApplicationGrant, USPError>

    /// Checks an application token presentation for this peer address and channel.
    func validateApplicationToken(_ presentation: TokenProof.Presentation, context: SessionContext) -> Result<ApplicationGrant, USPError>

    /// Invalidates tokens (secrets, `usp1.…`, or IDs) on behalf of `identity`; returns the IDs invalidated.
    func invalidateTokens(_ tokens: [String], context: SessionContext) -> Result<[TokenProof.TokenID], USPError>

    /// An application-defined `application_session` action (anything but begin and end).
    func performAction(_ action: String, grant: ApplicationGrant, parameters: [String: JSONValue]?, context: SessionContext) -> Result<JSONValue, USPError>

    /// Early-data replay rule: may the early frames of this message 1 be acted on?
    /// A typical implementation keeps one `ReplayGuard` for the whole server.
    func admitEarlyData(clientEphemeral: [UInt8], timestamp: Timestamp, now: Timestamp) -> Bool

    /// Whether checking these authentication fields is too slow for the I/O thread (a password
    /// hash: tens of milliseconds). If so the session emits `.authenticationRequested` and waits
    /// for `completeAuthentication` instead of calling `authenticate` itself. Default: false.
    func authenticationIsSlow(fields: [String: JSONValue]) -> Bool
}

extension ServerSessionDelegate {
    public func authenticationIsSlow(fields: [String: JSONValue]) -> Bool { false }

    public func issueBrokeredApplicationToken(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue], clientIP: String,
                                              authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<String, USPError> {
        .failure(USPError(.brokerNotAllowed, "this server brokers no connections"))
    }

    public func grantApplicationByName(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue],
                                       authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<ApplicationGrant, USPError> {
        switch issueApplicationToken(index: index, entry: entry, request: request, authorizationTokenID: authorizationTokenID, context: context) {
        case .success(let secret):
            let presentation: TokenProof.Presentation
            do {
                presentation = try TokenProof.parse(try TokenProof.present(secret: secret, handshakeHash: context.channelBinding))
            } catch {
                return .failure(USPError(.internalError, "policy issued an unusable token: \(error.detail)"))
            }
            return validateApplicationToken(presentation, context: context)
        case .failure(let error):
            return .failure(error)
        }
    }
}
