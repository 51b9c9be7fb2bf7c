import Foundation
import Logging
import Synchronization
import USPConfig
import USPCore
import USPNIO
import USPStore
import USPUnix

/// The daemon's `ServerSessionDelegate`: menus from the application catalog, logins against the
/// user store, channel-bound tokens kept as (ID, Ed25519 public key) in the store, the audit trail,
/// the login throttle and the early-data replay guard.
///
/// Authentication methods at menu index 0, before login:
/// - `password`: `user`, `password`; the stored hash is checked by `verifyPassword` (scrypt,
///   `PasswordHash.verify` in the daemon).
/// - `publickey`: `public_key` (base64url Ed25519) and `signature` (base64url) over
///   `"USP auth v1\0" ‖ h` (`AuthenticationProof`); `user` is optional, the key finds the identity.
/// - `noise_static`: no fields (`user` optional); the handshake already proved the client's static
///   X25519 key, which must be registered to an identity. Offered only when the client has one.
///
/// Token rules: authorization tokens last `authorizationTokenLifetime`; application tokens last the
/// application's `token_lifetime` and are bound to the client's IP address, the application and the
/// authorization token they were issued under (whose revocation or expiry ends them too). Every
/// security decision is audited first, and fails if the audit row cannot be written.
public final class ServerPolicy: ServerSessionDelegate, Sendable {
    public struct Settings: Sendable {
        public var authorizationTokenLifetime: Double = 86400
        /// Caps every application's own `token_lifetime`.
        public var maxApplicationTokenLifetime: Double = 3600
        /// Where a login token is accepted from (`login_token_binding`).
        public var loginTokenBinding = LoginTokenBinding.none
        /// What `prefix` binding means (`source_prefix_v4`, `source_prefix_v6`).
        public var sourcePrefix = SourcePrefix.Lengths()
        /// Seconds after its arrival that a login's reply leaves at the earliest, drawn uniformly
        /// per login (`login_reply_min`, `login_reply_max`): the same for a success and a failure.
        public var loginReplyTime: ClosedRange<Double> = 0.05...0.1
        /// Who may broker connections (`[[broker]]`); empty: nobody.
        public var brokers: [BrokerRule] = []
        public init() {}
        public init(config: ServerConfig) {
            brokers = config.brokers
            authorizationTokenLifetime = Double(config.authorizationTokenLifetime)
            loginReplyTime = config.loginReplyMin...max(config.loginReplyMin, config.loginReplyMax)
            loginTokenBinding = LoginTokenBinding(rawValue: config.loginTokenBinding) ?? .none
            sourcePrefix = SourcePrefix.Lengths(v4: config.sourcePrefixV4, v6: config.sourcePrefixV6)
        }
    }

    /// Whether a login token is accepted only from where it was issued. Binding stops a stolen
    /// login from being used elsewhere, at the price of a new login whenever the client's address
    /// (`address`) or network (`prefix`: /24, /64) changes. Application tokens are always bound
    /// to the address they were issued to.
    public enum LoginTokenBinding: String, Sendable {
        case none, prefix, address

        /// Whether a token issued to `issuedTo` may be used from `presentedFrom`.
        func admits(issuedTo: String?, presentedFrom: String, prefix: SourcePrefix.Lengths = .init()) -> Bool {
            switch self {
            case .none: true
            case .address: issuedTo == presentedFrom
            case .prefix: issuedTo.map { SourcePrefix.of($0, lengths: prefix) == SourcePrefix.of(presentedFrom, lengths: prefix) } ?? false
            }
        }
    }

    public let store: any USPStore
    public let catalog: ApplicationCatalog
    public let audit: AuditLog
    public let throttle: LoginThrottle
    public let settings: Settings
    private let verifyPassword: @Sendable (_ password: String, _ hash: String) -> Bool
    /// Called with the password when the user is unknown, to spend the time of one real check
    /// (`PasswordHash.verifyAgainstDummy`), so the answer time does not reveal which names exist.
    private let onUnknownUser: (@Sendable (String) -> Void)?
    private let issueToken: @Sendable () -> TokenProof.Issued
    /// A number drawn uniformly from [0, 1).
    private let uniform: @Sendable () -> Double
    /// When each session's login in progress arrived (monotonic seconds), if before `authenticate`.
    private let loginArrivals = Mutex<[String: Double]>([:])
    private let replay = Mutex(ReplayGuard(window: 120))
    private let replyDelays = Mutex<[String: Double]>([:])
    private let monotonic: @Sendable () -> Double
    /// Held while a brokered token is counted and issued, so that concurrent requests on this
    /// node cannot both pass a broker's last token of the minute.
    private let brokering = Mutex<Void>(())
    /// The logins behind this node's streams, and when they expire (the daemon ends their streams then).
    public let loginExpiries = LoginExpiries()
    let logger: Logger

    public init(store: any USPStore, catalog: ApplicationCatalog, audit: AuditLog, throttle: LoginThrottle = LoginThrottle(),
                settings: Settings = Settings(), verifyPassword: @escaping @Sendable (String, String) -> Bool,
                onUnknownUser: (@Sendable (String) -> Void)? = nil, random: some RandomSource = SystemRandomSource(),
                monotonic: @escaping @Sendable () -> Double = { ServerClock.monotonic() },
                logger: Logger = Logger(label: "uspd.policy")) {
        self.store = store
        self.catalog = catalog
        self.audit = audit
        self.throttle = throttle
        self.settings = settings
        self.verifyPassword = verifyPassword
        self.onUnknownUser = onUnknownUser
        self.issueToken = { TokenProof.issue(random: random) }
        self.uniform = {
            var word: UInt64 = 0
            withUnsafeMutableBytes(of: &word) { random.fill($0) }
            return Double(word >> 11) / Double(1 << 53)
        }
        self.monotonic = monotonic
        self.logger = logger
    }

    // MARK: - Menu

    public static let passwordMethod = AuthenticationMethod(method: "password", expectedRequestBody: ["user": "string", "password": "string"],
                                                            extra: ["kdf": "scrypt"])
    public static let publicKeyMethod = AuthenticationMethod(
        method: "publickey", expectedRequestBody: ["public_key": "string", "signature": "string", "user": "string?"],
        extra: ["key_type": "ed25519", "signed": "USP auth v1\\0 || handshake hash"])
    public static let noiseStaticMethod = AuthenticationMethod(method: "noise_static", expectedRequestBody: ["user": "string?"],
                                                               extra: ["key_type": "x25519"])

    func methods(for context: SessionContext) -> [AuthenticationMethod] {
        var methods = [Self.passwordMethod, Self.publicKeyMethod]
        if context.clientStatic != nil { methods.append(Self.noiseStaticMethod) }
        return methods
    }

    public func menu(for identity: Identity?, context: SessionContext) -> ApplicationMenu {
        var applications: [ServiceIndex: ApplicationOffer] = [:]
        for entry in catalog.snapshot().entries where entry.definition.isVisible(to: identity?.name, groups: identity?.groups ?? []) {
            let d = entry.definition
            applications[ServiceIndex(entry.index)] = ApplicationOffer(name: d.name, description: d.description.isEmpty ? nil : d.description,
                                                                        expectedRequestBody: d.expectedRequestBody)
        }
        let authentication: AuthenticationOffer = identity == nil
            ? .methods(methods(for: context))
            : .tokenInvalidation(TokenInvalidationOffer())
        return ApplicationMenu(serverSessionID: context.serverSessionID, authentication: authentication, applications: applications)
    }

    // MARK: - Login

    /// Password checks hash with scrypt (~25 ms): the session hands them to the shell to run off
    /// the event loop. Key logins are a signature check or nothing: they stay inline.
    public func authenticationIsSlow(fields: [String: JSONValue]) -> Bool {
        fields["auth_method"]?.stringValue == "password"
    }

    /// Notes that a login arrived on this session and will be checked later (off the event loop,
    /// after a delay): its reply time counts from now.
    public func loginArrived(serverSessionID: String) {
        let now = monotonic()
        loginArrivals.withLock { $0[serverSessionID] = now }
    }

    /// Checks a login. Whatever the outcome, the reply is held (`takeReplyDelay`) until a time
    /// drawn from `loginReplyTime` after the login arrived, or until a penalty window ends if
    /// that is later: an observer who sees when the reply leaves learns nothing of the outcome.
    /// A failure's penalty window delays the next attempt, not this reply.
    public func authenticate(fields: [String: JSONValue], context: SessionContext) -> Result<AuthorizationGrant, USPError> {
        let arrived = loginArrivals.withLock { $0.removeValue(forKey: context.serverSessionID) } ?? monotonic()
        var penalty = 0.0
        let result = check(fields: fields, context: context, penalty: &penalty)
        let range = settings.loginReplyTime
        let replyAt = arrived + range.lowerBound + (range.upperBound - range.lowerBound) * uniform()
        let delay = max(penalty, replyAt - monotonic())
        if delay > 0 { replyDelays.withLock { $0[context.serverSessionID] = delay } }
        return result
    }

    private func check(fields: [String: JSONValue], context: SessionContext, penalty: inout Double) -> Result<AuthorizationGrant, USPError> {
        guard case .string(let method)? = fields["auth_method"] else {
            return .failure(USPError(.invalidRequestBody, "auth_method missing"))
        }
        guard let offered = methods(for: context).first(where: { $0.method == method }) else {
            return .failure(USPError(.unknownMethod, "auth_method \(method) is not offered"))
        }
        var body = fields
        body["auth_method"] = nil
        if let problem = RequestBodyValidator.validate(body, against: offered.expectedRequestBody) {
            return .failure(problem)
        }
        let claimed = body["user"]?.stringValue
        let now = monotonic()
        var wait = throttle.wait(source: context.peerAddress, identity: claimed, now: now)
        let penalties = throttle.penalties(source: context.peerAddress, identity: claimed)
        if let shared = store as? any SharedLoginPenalties {
            // A fleet's windows are the store's, opened and cleared by every node (this node's
            // memory would miss a success elsewhere).
            let wall = date(context.now)
            do {
                let open = try shared.openLoginPenalties(penalties.refusing.map(\.key), now: wall)
                wait = max(0, open.values.map { $0.timeIntervalSince(wall) }.max() ?? 0)
            } catch {
                storeFailure("login refused: its penalty windows could not be read", error)
                audit.note(event(.authentication, context, identity: claimed, method: method, result: USPError.Code.storeUnavailable.name))
                return .failure(USPError(.storeUnavailable, "store: \(error)"))
            }
        }
        if wait > 0 {
            audit.note(event(.authentication, context, identity: claimed, method: method, result: USPError.Code.rateLimited.name,
                             detail: String(format: "%.2fs penalty left", wait)))
            // The refusal is answered only when the window has passed: a guesser gains nothing
            // from asking again at once, and costs the server one answer per window.
            penalty = wait
            return .failure(USPError(.rateLimited, "login attempts from \(context.peerAddress), or for \(claimed ?? "-") from its network, are slowed down"))
        }
        let outcome: Result<UserRecord, USPError>
        do {
            switch method {
            case "password": outcome = try checkPassword(body)
            case "publickey": outcome = try checkPublicKey(body, context: context)
            default: outcome = try checkNoiseStatic(body, context: context)
            }
        } catch {
            storeFailure("store failure during login", error)
            // Queued: written once the store answers again.
            audit.note(event(.authentication, context, identity: claimed, method: method, result: USPError.Code.storeUnavailable.name))
            return .failure(USPError(.storeUnavailable, "store: \(error)"))
        }
        switch outcome {
        case .failure(let error):
            let who = claimed
            // The window this opens refuses (late) the next attempt; this reply keeps the common time.
            _ = throttle.failed(source: context.peerAddress, identity: who, now: now)
            if let shared = store as? any SharedLoginPenalties {
                do {
                    _ = try shared.recordLoginFailure(throttle.allPenalties(source: context.peerAddress, identity: who), base: throttle.base,
                                                      forgetAfter: throttle.forgetAfter, now: date(context.now))
                } catch {
                    storeFailure("a failed login's penalty could not be shared with the other nodes", error)
                }
            }
            audit.note(event(.authentication, context, identity: who, method: method, result: error.code.name, detail: error.detail))
            return .failure(USPError(.authenticationFailed, error.detail))
        case .success(let user):
            do {
                // Written with the token below, in its transaction.
                audit.note(event(.authentication, context, identity: user.name, method: method, result: "ok"))
                let issued = issueToken()
                let issuedAt = date(context.now)
                let record = TokenRecord(id: issued.id.description, kind: .authorization, publicKey: Base64URL.encode(issued.publicKey),
                                         identity: user.name, peerAddress: context.peerAddress, issuedAt: issuedAt,
                                         expiresAt: issuedAt.addingTimeInterval(settings.authorizationTokenLifetime))
                // The token and its audit row are written in one transaction: neither or both.
                try audit.recordToken(record, event(.tokenIssued, context, identity: user.name, method: method, result: "ok",
                                                    tokenID: record.id, detail: "authorization"))
                throttle.succeeded(source: context.peerAddress, identity: user.name)
                if let shared = store as? any SharedLoginPenalties {
                    do {
                        try shared.clearLoginPenalties(throttle.allPenalties(source: context.peerAddress, identity: user.name).map(\.key))
                    } catch {
                        storeFailure("a login's penalties could not be cleared on the other nodes", error)
                    }
                }
                return .success(AuthorizationGrant(identity: Identity(name: user.name, groups: user.groups), token: issued.secret, tokenID: issued.id))
            } catch {
                storeFailure("login of \(user.name) refused: the audit or token store failed", error)
                return .failure(USPError(.storeUnavailable, "audit or token store unavailable"))
            }
        }
    }

    private func checkPassword(_ body: [String: JSONValue]) throws -> Result<UserRecord, USPError> {
        let name = body["user"]?.stringValue ?? ""
        let password = body["password"]?.stringValue ?? ""
        guard let user = try store.user(named: name), let hash = user.passwordHash else {
            onUnknownUser?(password)
            return .failure(USPError(.authenticationFailed, "no user \(name) with a password"))
        }
        guard verifyPassword(password, hash) else { return .failure(USPError(.authenticationFailed, "wrong password for \(name)")) }
        return .success(user)
    }

    private func checkPublicKey(_ body: [String: JSONValue], context: SessionContext) throws -> Result<UserRecord, USPError> {
        guard let key = body["public_key"]?.stringValue.flatMap(Self.decodeKey), key.count == 32,
              let signature = body["signature"]?.stringValue.flatMap(Self.decodeKey), signature.count == 64 else {
            return .failure(USPError(.authenticationFailed, "public_key or signature is not base64url of 32 / 64 bytes"))
        }
        guard AuthenticationProof.verify(signature: signature, publicKey: key, handshakeHash: context.channelBinding) else {
            return .failure(USPError(.authenticationFailed, "signature does not verify over this connection's handshake hash"))
        }
        guard let user = try findUser(key: key, named: body["user"]?.stringValue) else {
            return .failure(USPError(.authenticationFailed, "Ed25519 key \(Fingerprint.of(key)) is not registered"))
        }
        return .success(user)
    }

    private func checkNoiseStatic(_ body: [String: JSONValue], context: SessionContext) throws -> Result<UserRecord, USPError> {
        guard let key = context.clientStatic else {
            return .failure(USPError(.authenticationFailed, "no client static key (NK)"))
        }
        guard let user = try findUser(key: key, named: body["user"]?.stringValue) else {
            return .failure(USPError(.authenticationFailed, "Noise static key \(Fingerprint.of(key)) is not registered"))
        }
        return .success(user)
    }

    /// The user `named` (or, without a name, whoever) who registered `key`. Keys are stored as
    /// unpadded base64url (`uspd user add` normalises them).
    private func findUser(key: [UInt8], named name: String?) throws -> UserRecord? {
        guard let name else { return try store.user(publicKey: Base64URL.encode(key)) }
        return try store.user(named: name).flatMap { user in
            user.publicKeys.contains { Self.decodeKey($0).map { ConstantTime.equal($0, key) } ?? false } ? user : nil
        }
    }

    /// Raw key bytes from base64url or standard base64 (padded or not), with an optional
    /// `x25519:` / `ed25519:` type prefix.
    public static func decodeKey(_ text: String) -> [UInt8]? {
        if let key = OpenSSHPublicKey.ed25519(line: text) { return key }
        var t = Substring(text.trimmingCharacters(in: .whitespaces))
        for prefix in ["x25519:", "ed25519:"] where t.hasPrefix(prefix) { t = t.dropFirst(prefix.count) }
        let normalized = t.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .trimmingCharacters(in: CharacterSet(charactersIn: "="))
        return Base64URL.decode(normalized)
    }

    /// How long a password login for the user these fields name waits before it is checked:
    /// the identity-wide slow-down, which delays and never refuses (`LoginThrottle`).
    public func loginDelay(fields: [String: JSONValue]) -> Double {
        let identity = fields["user"]?.stringValue
        let local = throttle.identityDelay(identity: identity, now: monotonic())
        guard let identity, let shared = store as? any SharedLoginPenalties else { return local }
        let key = throttle.identityPenalty(identity).key
        let wall = Date()
        do {
            // A fleet's window is the store's (see `authenticate`).
            let open = try shared.openLoginPenalties([key], now: wall)
            return max(0, min(throttle.identityMaximum, open[key].map { $0.timeIntervalSince(wall) } ?? 0))
        } catch {
            // The login itself asks the store next and is refused there if it still cannot answer.
            storeFailure("a login's identity-wide delay could not be read", error)
            return local
        }
    }

    /// Drops what was kept for a session that has ended.
    public func forget(serverSessionID: String) {
        loginArrivals.withLock { _ = $0.removeValue(forKey: serverSessionID) }
        replyDelays.withLock { _ = $0.removeValue(forKey: serverSessionID) }
    }

    /// How long to hold the reply to the request just handled on this session (a login).
    public func takeReplyDelay(serverSessionID: String) -> Double? {
        replyDelays.withLock { $0.removeValue(forKey: serverSessionID) }
    }

    // MARK: - Tokens

    public func validateAuthorizationToken(_ presentation: TokenProof.Presentation, context: SessionContext)
        -> Result<(Identity, TokenProof.TokenID), USPError> {
        let id = presentation.id.description
        do {
            guard let token = try store.token(id: id), token.kind == .authorization, let name = token.identity,
                  let key = Base64URL.decode(token.publicKey),
                  presentation.verify(publicKey: key, handshakeHash: context.channelBinding) else {
                return refuse(.authorizationInvalid, id, context, "unknown authorization token or proof not bound to this channel")
            }
            if token.revokedAt != nil { return refuse(.tokenRevoked, id, context, "revoked", identity: name) }
            if token.expiresAt <= date(context.now) { return refuse(.tokenExpired, id, context, "expired", identity: name) }
            guard settings.loginTokenBinding.admits(issuedTo: token.peerAddress, presentedFrom: context.peerAddress, prefix: settings.sourcePrefix) else {
                return refuse(.tokenWrongAddress, id, context, "login issued to \(token.peerAddress ?? "?"), presented from \(context.peerAddress) "
                              + "(login_token_binding = \(settings.loginTokenBinding.rawValue))", identity: name)
            }
            guard let user = try store.user(named: name) else {
                return refuse(.authorizationInvalid, id, context, "user \(name) no longer exists", identity: name)
            }
            audit.note(event(.tokenUsed, context, identity: name, method: "authorization_token", result: "ok", tokenID: id))
            return .success((Identity(name: user.name, groups: user.groups), presentation.id))
        } catch {
            storeFailure("authorization token check failed", error)
            return refuse(.storeUnavailable, id, context, "the store could not be read")
        }
    }

    public func issueApplicationToken(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue],
                                      authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<String, USPError> {
        issue(entry: entry, request: request, authorizationTokenID: authorizationTokenID, context: context, durable: true)
            .map { $0.secret }
    }

    /// Connection brokering: an application token for the client at `clientIP`, asked for by a
    /// logged-in broker. Refused unless a `[[broker]]` rule names the caller (`broker_not_allowed`)
    /// and `clientIP` is in its `clients` (`broker_address_not_allowed`), and while the broker has
    /// had `tokens_per_minute` brokered tokens in the last minute over the whole fleet
    /// (`rate_limited`). The token is bound to `clientIP` (not to the broker's address), traces
    /// back to the broker's login and identity, and lasts the rule's `token_lifetime` (instead of
    /// the application's own), or what is left of the login if that is shorter.
    public func issueBrokeredApplicationToken(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue], clientIP: String,
                                              authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<String, USPError> {
        guard let broker = context.identity else {
            return .failure(USPError(.authorizationMissing, "brokering needs a login"))
        }
        func refuse(_ code: USPError.Code, _ detail: String) -> Result<String, USPError> {
            audit.note(event(.tokenRefused, context, identity: broker.name, result: code.name, authorizationTokenID: authorizationTokenID?.description,
                             application: entry.name, detail: "brokering for \(clientIP): \(detail)"))
            return .failure(USPError(code, detail))
        }
        let now = date(context.now)
        // The login first (a session whose login was invalidated learns nothing of the rules),
        // then the rule for the user's groups as the store has them now, not as at login.
        let groups: [String]
        var login: TokenRecord?
        do {
            if let parent = authorizationTokenID {
                switch try issuingLogin(parent, at: now) {
                case .success(let record): login = record
                case .failure(let error): return .failure(error)
                }
            }
            guard let user = try store.user(named: broker.name) else {
                return .failure(USPError(.tokenRevoked, "user \(broker.name) no longer exists"))
            }
            groups = user.groups
        } catch {
            storeFailure("brokered token for \(entry.name) refused: the broker's login could not be read", error)
            return .failure(USPError(.storeUnavailable, "token store unavailable"))
        }
        guard let rule = BrokerRule.rule(for: broker.name, groups: groups, in: settings.brokers) else {
            return refuse(.brokerNotAllowed, "\(broker.name) may not broker connections on this server")
        }
        guard let address = IPAddress(clientIP) else {
            return refuse(.brokerAddressNotAllowed, "client_ip \(clientIP) is not an IPv4 or IPv6 address")
        }
        if let kind = address.notBrokerable {
            return refuse(.brokerAddressNotAllowed, "\(address) is \(kind), not one client's address")
        }
        guard rule.covers(address) else {
            return refuse(.brokerAddressNotAllowed, "\(address) is outside the networks \(broker.name) may broker for")
        }
        return brokering.withLock { _ in
            do {
                let recent = try store.brokeredTokenCount(identity: broker.name, since: now.addingTimeInterval(-60))
                if recent >= rule.tokensPerMinute {
                    return refuse(.rateLimited, "\(broker.name) had \(recent) brokered tokens in the last minute (tokens_per_minute = \(rule.tokensPerMinute))")
                }
            } catch {
                storeFailure("brokered token for \(entry.name) refused: the broker's count could not be read", error)
                return .failure(USPError(.storeUnavailable, "token store unavailable"))
            }
            return issue(entry: entry, request: request, authorizationTokenID: authorizationTokenID, context: context, durable: true,
                         checkedLogin: login, brokeredFor: address.description, lifetime: Double(rule.tokenLifetime))
                .map { $0.secret }
        }
    }

    /// A begin by name: the token is issued as for a `service_request`, but it never leaves the
    /// server, so it is granted here at once rather than presented and checked again, and its
    /// commit need not reach the disk before the stream's own record, which follows at once.
    public func grantApplicationByName(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue],
                                       authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<ApplicationGrant, USPError> {
        issue(entry: entry, request: request, authorizationTokenID: authorizationTokenID, context: context, durable: false)
            .map { issued in
                audit.note(event(.tokenUsed, context, identity: issued.record.identity, result: "ok", tokenID: issued.record.id,
                                 authorizationTokenID: issued.record.authorizationTokenID, application: issued.record.application))
                return ApplicationGrant(application: entry.name, tokenID: issued.id, authorizationTokenID: authorizationTokenID,
                                        identity: context.identity)
            }
    }

    /// The login `id` as stored, if it may still have tokens issued under it (neither revoked nor
    /// expired at `now`): a session whose login was invalidated elsewhere gets nothing more under it.
    private func issuingLogin(_ id: TokenProof.TokenID, at now: Date) throws -> Result<TokenRecord, USPError> {
        guard let login = try store.token(id: id.description), login.revokedAt == nil else {
            return .failure(USPError(.tokenRevoked, "authorization token \(id) is revoked"))
        }
        if login.expiresAt <= now { return .failure(USPError(.tokenExpired, "authorization token \(id) expired")) }
        return .success(login)
    }

    /// Issues an application token for the caller, bound to its address; or, with `brokeredFor`,
    /// to that address, for `lifetime` seconds (at most the broker's login). `checkedLogin`: the
    /// login behind `authorizationTokenID` when the caller has just read it with `issuingLogin`.
    private func issue(entry: ApplicationOffer, request: [String: JSONValue], authorizationTokenID: TokenProof.TokenID?,
                       context: SessionContext, durable: Bool, checkedLogin: TokenRecord? = nil, brokeredFor: String? = nil,
                       lifetime: Double? = nil) -> Result<(secret: String, id: TokenProof.TokenID, record: TokenRecord), USPError> {
        guard let definition = catalog.application(named: entry.name) else {
            return .failure(USPError(.unknownIndex, "application \(entry.name) is no longer offered"))
        }
        guard definition.isVisible(to: context.identity?.name, groups: context.identity?.groups ?? []) else {
            return .failure(USPError(context.identity == nil ? .authorizationMissing : .unknownIndex, "\(entry.name) is not for this caller"))
        }
        do {
            let issuedAt = date(context.now)
            // A brokered token lasts the broker rule's token_lifetime instead of the application's:
            // it travels to its holder before it is used.
            let lifetime0 = min(Double(max(definition.limits.tokenLifetime, 1)), settings.maxApplicationTokenLifetime)
            var lifetime = lifetime.map { min($0, settings.maxApplicationTokenLifetime) } ?? lifetime0
            if let parent = authorizationTokenID {
                let p: TokenRecord
                if let checkedLogin {
                    p = checkedLogin
                } else {
                    switch try issuingLogin(parent, at: issuedAt) {
                    case .success(let record): p = record
                    case .failure(let error): return .failure(error)
                    }
                }
                loginExpiries.note(parent.description, expiresAt: p.expiresAt)
                // A brokered token never outlives the broker's login.
                if brokeredFor != nil { lifetime = min(lifetime, p.expiresAt.timeIntervalSince(issuedAt)) }
            }
            let issued = issueToken()
            let json = String(decoding: try JSONValue.object(request).encoded(), as: UTF8.self)
            let record = TokenRecord(id: issued.id.description, kind: .application, publicKey: Base64URL.encode(issued.publicKey),
                                     identity: context.identity?.name, application: definition.name, peerAddress: brokeredFor ?? context.peerAddress,
                                     requestJSON: json, authorizationTokenID: authorizationTokenID?.description,
                                     issuedAt: issuedAt, expiresAt: issuedAt.addingTimeInterval(lifetime), brokeredFor: brokeredFor)
            try audit.recordToken(record, event(.tokenIssued, context, identity: record.identity, result: "ok", tokenID: record.id,
                                                authorizationTokenID: record.authorizationTokenID, application: definition.name,
                                                detail: brokeredFor.map { "brokered for \($0), valid \(Int(lifetime.rounded(.up))) s" }),
                                  durable: durable)
            return .success((issued.secret, issued.id, record))
        } catch {
            storeFailure("application token for \(entry.name) refused", error)
            return .failure(USPError(.storeUnavailable, "token store unavailable"))
        }
    }

    public func validateApplicationToken(_ presentation: TokenProof.Presentation, context: SessionContext) -> Result<ApplicationGrant, USPError> {
        let id = presentation.id.description
        do {
            guard let token = try store.token(id: id), token.kind == .application, let application = token.application,
                  let key = Base64URL.decode(token.publicKey),
                  presentation.verify(publicKey: key, handshakeHash: context.channelBinding) else {
                return refuse(.tokenInvalid, id, context, "unknown application token or proof not bound to this channel")
            }
            let now = date(context.now)
            if token.revokedAt != nil { return refuse(.tokenRevoked, id, context, "revoked", identity: token.identity) }
            var parentID: TokenProof.TokenID?
            if let parent = token.authorizationTokenID {
                parentID = TokenProof.TokenID(text: parent)
                guard let p = try store.token(id: parent), p.revokedAt == nil else {
                    return refuse(.tokenRevoked, id, context, "its authorization token \(parent) is revoked", identity: token.identity)
                }
                if p.expiresAt <= now { return refuse(.tokenExpired, id, context, "its authorization token expired", identity: token.identity) }
                loginExpiries.note(parent, expiresAt: p.expiresAt)
            }
            if token.expiresAt <= now { return refuse(.tokenExpired, id, context, "expired", identity: token.identity) }
            guard token.peerAddress == context.peerAddress else {
                return refuse(.tokenWrongAddress, id, context, "issued to \(token.peerAddress ?? "?"), presented from \(context.peerAddress)",
                              identity: token.identity)
            }
            guard let definition = catalog.application(named: application) else {
                return refuse(.tokenInvalid, id, context, "application \(application) is no longer offered", identity: token.identity)
            }
            let groups = try token.identity.flatMap { try store.user(named: $0)?.groups } ?? []
            guard definition.isVisible(to: token.identity, groups: groups) else {
                return refuse(.tokenInvalid, id, context, "\(application) is no longer visible to \(token.identity ?? "strangers")",
                              identity: token.identity)
            }
            // A brokered token holds only while its broker may still broker for its address (a
            // rule withdrawn or narrowed at a restart ends what it brokered).
            if let address = token.brokeredFor {
                let rule = BrokerRule.rule(for: token.identity ?? "", groups: groups, in: settings.brokers)
                guard let rule, let ip = IPAddress(address), rule.covers(ip) else {
                    return refuse(.tokenRevoked, id, context, "\(token.identity ?? "?") may no longer broker for \(address)", identity: token.identity)
                }
            }
            // Made durable with the stream_opened that follows (ConnectionHooks.openApplication).
            audit.note(event(.tokenUsed, context, identity: token.identity, result: "ok", tokenID: id,
                             authorizationTokenID: token.authorizationTokenID, application: application,
                             detail: token.brokeredFor.map { "brokered by \(token.identity ?? "?") for \($0)" }))
            return .success(ApplicationGrant(application: application, tokenID: presentation.id, authorizationTokenID: parentID,
                                             identity: token.identity.map { Identity(name: $0, groups: groups) }))
        } catch {
            storeFailure("application token check failed", error)
            return refuse(.storeUnavailable, id, context, "the store could not be read")
        }
    }

    public func invalidateTokens(_ tokens: [String], context: SessionContext) -> Result<[TokenProof.TokenID], USPError> {
        guard let identity = context.identity else { return .failure(USPError(.authorizationMissing, "log in to invalidate tokens")) }
        var ids: [String] = []
        do {
            for text in tokens {
                guard let id = (try? TokenProof.tokenID(secret: text)) ?? TokenProof.TokenID(text: text) else {
                    return .failure(USPError(.tokenInvalid, "not a token secret or ID"))
                }
                guard let record = try store.token(id: id.description), record.identity == identity.name else {
                    return .failure(USPError(.tokenInvalid, "unknown token \(id), or not \(identity.name)'s"))
                }
                ids.append(id.description)
            }
            // The reply that says so waits for the disk (the session's durability barrier).
            let revoked = try store.revokeTokens(ids: ids, at: date(context.now), durable: false)
            audit.awaitDisk(session: context.serverSessionID)
            let all = Array(Set(ids).union(revoked)).sorted()
            for id in all {
                audit.note(event(.tokenInvalidated, context, identity: identity.name, result: "ok", tokenID: id,
                                 detail: revoked.contains(id) ? nil : "already revoked"))
            }
            return .success(all.compactMap { TokenProof.TokenID(text: $0) })
        } catch {
            storeFailure("token invalidation failed", error)
            return .failure(USPError(.storeUnavailable, "token store unavailable"))
        }
    }

    public func performAction(_ action: String, grant: ApplicationGrant, parameters: [String: JSONValue]?,
                              context: SessionContext) -> Result<JSONValue, USPError> {
        .failure(USPError(.unknownAction, "\(grant.application) defines no action \(action)"))
    }

    /// The local cache first (a replay to this node, a stale or future timestamp); then, where the
    /// store keeps a cache for every node (`SharedReplayCache`: a fleet on PostgreSQL), that one,
    /// so a message 1 replayed to another node is refused there too. A store that cannot answer
    /// refuses the early data: the client sends those frames again after the handshake.
    public func admitEarlyData(clientEphemeral: [UInt8], timestamp: Timestamp, now: Timestamp) -> Bool {
        guard replay.withLock({ $0.check(ephemeral: clientEphemeral, timestamp: timestamp, now: now) == .accept }) else { return false }
        guard let shared = store as? any SharedReplayCache else { return true }
        let current = date(now)
        do {
            return try shared.recordFirstUse(of: clientEphemeral, until: current.addingTimeInterval(2 * replay.withLock { $0.window }), now: current)
        } catch {
            storeFailure("early-data replay check failed; early data refused", error)
            return false
        }
    }

    // MARK: - Helpers

    /// A store failure refuses what was asked; a failing disk fails every request, so these lines
    /// are limited (the audit log's limiter, shared with its own failures).
    private func storeFailure(_ what: String, _ error: any Error) {
        audit.logLimiter.log(logger, .error, kind: "store failure", now: monotonic(), "\(what): \(error)")
    }


    private func refuse<T>(_ code: USPError.Code, _ tokenID: String, _ context: SessionContext, _ detail: String,
                           identity: String? = nil) -> Result<T, USPError> {
        audit.note(event(.tokenRefused, context, identity: identity, result: code.name, tokenID: tokenID, detail: detail))
        return .failure(USPError(code, detail))
    }

    func date(_ t: Timestamp) -> Date {
        Date(timeIntervalSince1970: Double(t.seconds) + Double(t.nanoseconds) / 1e9)
    }

    func event(_ kind: AuditEvent.Kind, _ context: SessionContext, identity: String? = nil, method: String? = nil, result: String? = nil,
               tokenID: String? = nil, authorizationTokenID: String? = nil, application: String? = nil, detail: String? = nil) -> AuditEvent {
        AuditEvent(time: date(context.now), kind: kind, session: context.serverSessionID, peerAddress: context.peerAddress,
                   clientKey: context.clientStatic.map(Fingerprint.of), identity: identity ?? context.identity?.name, method: method,
                   result: result, tokenID: tokenID, authorizationTokenID: authorizationTokenID, application: application, detail: detail)
    }
}
