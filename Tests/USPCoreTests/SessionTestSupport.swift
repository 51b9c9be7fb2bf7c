import Crypto
import Foundation
@testable import USPCore

/// Deterministic randomness for session tests: a counter-mode SHA-256 stream.
final class SeededRandom: RandomSource, @unchecked Sendable {
    private var counter: UInt64 = 0
    private let seed: UInt64
    private let lock = NSLock()
    init(seed: UInt64) { self.seed = seed }
    func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        lock.lock(); defer { lock.unlock() }
        var offset = 0
        while offset < buffer.count {
            counter += 1
            var input = [UInt8](repeating: 0, count: 16)
            for i in 0..<8 { input[i] = UInt8(truncatingIfNeeded: seed >> (8 * i)); input[8 + i] = UInt8(truncatingIfNeeded: counter >> (8 * i)) }
            for b in SHA256.hash(data: input) where offset < buffer.count {
                buffer[offset] = b
                offset += 1
            }
        }
    }
}

/// An in-memory policy for session tests: users with passwords, channel-bound tokens kept as
/// public keys, address-bound application tokens, a replay guard, and a public and a secure app.
final class TestPolicy: ServerSessionDelegate, @unchecked Sendable {
    struct StoredToken {
        let publicKey: [UInt8]
        let identity: Identity?
        let application: String?
        let peerAddress: String?
        let authorizationTokenID: TokenProof.TokenID?
        var revoked = false
        var expiresAt: UInt64
    }
    var users: [String: String] = ["alice": "correct horse"]
    var tokens: [TokenProof.TokenID: StoredToken] = [:]
    var replay = ReplayGuard(window: 120)
    var applications: [(index: UInt32, offer: ApplicationOffer, secure: Bool)] = [
        (1, ApplicationOffer(name: "echo", description: "echoes", expectedRequestBody: [:]), false),
        (2, ApplicationOffer(name: "time", description: "says the time", expectedRequestBody: ["zone": "string?"]), false),
        (3, ApplicationOffer(name: "ssh", description: "secure shell", expectedRequestBody: ["user": "string"]), true),
    ]
    var actions: [String] = []
    let random = SeededRandom(seed: 99)
    var tokenLifetime: UInt64 = 3600

    func menu(for identity: Identity?, context: SessionContext) -> ApplicationMenu {
        var apps: [ServiceIndex: ApplicationOffer] = [:]
        for a in applications where !a.secure || identity != nil { apps[ServiceIndex(a.index)] = a.offer }
        let auth: AuthenticationOffer = identity == nil
            ? .methods([AuthenticationMethod(method: "password", expectedRequestBody: ["user": "string", "password": "string"])])
            : .tokenInvalidation(TokenInvalidationOffer())
        return ApplicationMenu(serverSessionID: context.serverSessionID, authentication: auth, applications: apps)
    }

    func authenticate(fields: [String: JSONValue], context: SessionContext) -> Result<AuthorizationGrant, USPError> {
        guard case .string(let user)? = fields["user"], case .string(let password)? = fields["password"] else {
            return .failure(USPError(.invalidRequestBody, "user and password required"))
        }
        guard let expected = users[user], ConstantTime.equal(Array(expected.utf8), Array(password.utf8)) else {
            return .failure(USPError(.authenticationFailed, "bad password for \(user)"))
        }
        let issued = TokenProof.issue(random: random)
        let who = Identity(name: user)
        tokens[issued.id] = StoredToken(publicKey: issued.publicKey, identity: who, application: nil, peerAddress: nil,
                                        authorizationTokenID: nil, expiresAt: context.now.seconds + tokenLifetime)
        return .success(AuthorizationGrant(identity: who, token: issued.secret, tokenID: issued.id))
    }

    func validateAuthorizationToken(_ p: TokenProof.Presentation, context: SessionContext) -> Result<(Identity, TokenProof.TokenID), USPError> {
        guard let t = tokens[p.id], t.application == nil, let who = t.identity else { return .failure(USPError(.authorizationInvalid)) }
        guard !t.revoked else { return .failure(USPError(.tokenRevoked)) }
        guard t.expiresAt > context.now.seconds else { return .failure(USPError(.tokenExpired)) }
        guard p.verify(publicKey: t.publicKey, handshakeHash: context.channelBinding) else { return .failure(USPError(.authorizationInvalid)) }
        return .success((who, p.id))
    }

    func issueApplicationToken(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue],
                               authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<String, USPError> {
        let issued = TokenProof.issue(random: random)
        tokens[issued.id] = StoredToken(publicKey: issued.publicKey, identity: context.identity, application: entry.name,
                                        peerAddress: context.peerAddress, authorizationTokenID: authorizationTokenID,
                                        expiresAt: context.now.seconds + 60)
        return .success(issued.secret)
    }

    func validateApplicationToken(_ p: TokenProof.Presentation, context: SessionContext) -> Result<ApplicationGrant, USPError> {
        guard let t = tokens[p.id], let app = t.application else { return .failure(USPError(.tokenInvalid)) }
        guard !t.revoked, !(t.authorizationTokenID.map { tokens[$0]?.revoked ?? false } ?? false) else { return .failure(USPError(.tokenRevoked)) }
        guard t.expiresAt > context.now.seconds else { return .failure(USPError(.tokenExpired)) }
        guard t.peerAddress == context.peerAddress else { return .failure(USPError(.tokenWrongAddress)) }
        guard p.verify(publicKey: t.publicKey, handshakeHash: context.channelBinding) else { return .failure(USPError(.tokenInvalid)) }
        return .success(ApplicationGrant(application: app, tokenID: p.id, authorizationTokenID: t.authorizationTokenID, identity: t.identity))
    }

    func invalidateTokens(_ list: [String], context: SessionContext) -> Result<[TokenProof.TokenID], USPError> {
        var ids: [TokenProof.TokenID] = []
        for text in list {
            let id = (try? TokenProof.tokenID(secret: text)) ?? TokenProof.TokenID(text: text)
            guard let id, tokens[id] != nil else { return .failure(USPError(.tokenInvalid, "unknown token")) }
            tokens[id]!.revoked = true
            ids.append(id)
        }
        return .success(ids)
    }

    func performAction(_ action: String, grant: ApplicationGrant, parameters: [String: JSONValue]?, context: SessionContext) -> Result<JSONValue, USPError> {
        guard action == "status" else { return .failure(USPError(.unknownAction)) }
        actions.append(action)
        return .success(.object(["application": .string(grant.application)]))
    }

    func admitEarlyData(clientEphemeral: [UInt8], timestamp: Timestamp, now: Timestamp) -> Bool {
        replay.check(ephemeral: clientEphemeral, timestamp: timestamp, now: now) == .accept
    }
}

/// Owned copies of events, for assertions.
enum Seen: Equatable {
    case handshake(HandshakeLayout.Pattern, early: Bool)
    case authenticated(String)
    case opened(UInt32, String)
    case data(UInt32, [UInt8])
    case finished(UInt32)
    case closedStream(UInt32, USPError.Code)
    case writable(UInt32)
    case invalidated(Int)
    case closed(USPError.Code?)
    case menu([UInt32])
    case reply([UInt32: String])
    case appReply(String)
    case serverError(USPError.Code)
    case accepted(UInt32)
    case rejected(UInt32, USPError.Code)

    init(_ e: ServerEvent) {
        switch e {
        case .handshakeCompleted(let p, _, let early): self = .handshake(p, early: early)
        case .authenticated(let who, _): self = .authenticated(who.name)
        case .streamOpened(let s, let g): self = .opened(s, g.application)
        case .streamData(let s, let d): self = .data(s, Array(d))
        case .streamFinished(let s): self = .finished(s)
        case .streamClosed(let s, let c): self = .closedStream(s, c)
        case .streamWritable(let s): self = .writable(s)
        case .tokensInvalidated(let ids): self = .invalidated(ids.count)
        case .closed(let e): self = .closed(e?.code)
        }
    }

    init(_ e: ClientEvent) {
        switch e {
        case .handshakeCompleted(let p, _, let early): self = .handshake(p, early: early)
        case .menu(let m): self = .menu(m.applications.keys.map(\.rawValue).sorted())
        case .serviceReply(let r):
            var out: [UInt32: String] = [:]
            for (k, v) in r.results {
                switch v {
                case .token: out[k.rawValue] = "token"
                case .error(let e): out[k.rawValue] = e.code.name
                case .invalidated(let n): out[k.rawValue] = "invalidated \(n)"
                }
            }
            self = .reply(out)
        case .applicationSessionReply(let r):
            switch r.outcome {
            case .session(let s): self = .appReply(s.action.rawValue)
            case .error(let e): self = .appReply(e.code.name)
            }
        case .serverError(let e): self = .serverError(e.code)
        case .streamAccepted(let s): self = .accepted(s)
        case .streamRejected(let s, let c, _): self = .rejected(s, c)
        case .streamData(let s, let d): self = .data(s, Array(d))
        case .streamFinished(let s): self = .finished(s)
        case .streamClosed(let s, let c): self = .closedStream(s, c)
        case .streamWritable(let s): self = .writable(s)
        case .closed(let e): self = .closed(e?.code)
        }
    }
}

/// A client and a server session joined in memory. `pump()` moves bytes both ways until quiet,
/// counting flights (each direction change is one half round trip).
struct SessionPair {
    var client: ClientSession
    var server: ServerSession
    let policy: TestPolicy
    var now = Timestamp(seconds: 1_800_000_000)
    var clientSeen: [Seen] = []
    var serverSeen: [Seen] = []
    /// Server events carrying stream data, by stream, accumulated.
    var serverData: [UInt32: [UInt8]] = [:]
    var clientData: [UInt32: [UInt8]] = [:]
    var flights = 0
    var serverRaw: [ServerEvent] { [] }

    static let serverKey = try! KeyPair(privateKey: [UInt8](repeating: 7, count: 32))
    static let clientKey = try! KeyPair(privateKey: [UInt8](repeating: 9, count: 32))

    init(mode: InitiatorHandshake.Mode, policy: TestPolicy = TestPolicy(), peerAddress: String = "192.0.2.10",
         configuration: SessionConfiguration = SessionConfiguration(), serverConfiguration: SessionConfiguration? = nil,
         allowFirstContact: Bool = true, seed: UInt64 = 1) {
        self.policy = policy
        client = try! ClientSession(mode: mode, configuration: configuration, random: SeededRandom(seed: seed))
        server = ServerSession(staticKey: Self.serverKey, peerAddress: peerAddress, configuration: serverConfiguration ?? configuration,
                               allowFirstContact: allowFirstContact, random: SeededRandom(seed: seed + 1000))
    }

    static func ik(policy: TestPolicy = TestPolicy(), peerAddress: String = "192.0.2.10") -> SessionPair {
        SessionPair(mode: .knownServer(serverKey: serverKey.publicKey, clientStatic: clientKey), policy: policy, peerAddress: peerAddress)
    }

    mutating func start(_ request: ClientStart = ClientStart()) throws {
        try client.start(request, now: now)
    }

    /// Moves bytes until neither side has anything to send.
    mutating func pump(maxFlights: Int = 50) {
        for _ in 0..<maxFlights {
            var moved = false
            if client.outboundByteCount > 0 {
                let bytes = client.drainOutbound { Array($0) }
                deliverToServer(bytes)
                flights += 1
                moved = true
            }
            if server.outboundByteCount > 0 {
                let bytes = server.drainOutbound { Array($0) }
                deliverToClient(bytes)
                flights += 1
                moved = true
            }
            if !moved { return }
        }
    }

    mutating func deliverToServer(_ bytes: [UInt8]) {
        var seen: [Seen] = []
        var data: [(UInt32, [UInt8])] = []
        server.receive(bytes, now: now, delegate: policy) { e in
            seen.append(Seen(e))
            if case .streamData(let s, let d) = e { data.append((s, Array(d))) }
        }
        serverSeen += seen
        for (s, d) in data { serverData[s, default: []] += d }
    }

    mutating func deliverToClient(_ bytes: [UInt8]) {
        var seen: [Seen] = []
        var data: [(UInt32, [UInt8])] = []
        client.receive(bytes, now: now, delegate: TrustAnyServerKey()) { e in
            seen.append(Seen(e))
            if case .streamData(let s, let d) = e { data.append((s, Array(d))) }
        }
        clientSeen += seen
        for (s, d) in data { clientData[s, default: []] += d }
    }

    /// The token string of index `i` in the last service reply the client got.
    func lastToken(_ index: UInt32, in replies: [ServiceReply]) -> String? {
        for r in replies.reversed() { if case .token(let t)? = r.results[ServiceIndex(index)] { return t } }
        return nil
    }
}
