import USPCore
import USPServer

/// A client and a server session joined in memory, the server driven by a `ServerPolicy`.
public struct MemoryPair {
    public var client: ClientSession
    public var server: ServerSession
    public let policy: ServerPolicy
    public var now = Timestamp(seconds: 1_800_000_000)
    public var log = ClientLog()
    public var serverEvents: [String] = []
    public var opened: [UInt32: ApplicationGrant] = [:]
    public var serverClosedStreams: [UInt32: USPError.Code] = [:]
    public var invalidated: [TokenProof.TokenID] = []

    public init(policy: ServerPolicy, mode: InitiatorHandshake.Mode = .knownServer(serverKey: Fixtures.serverKey.publicKey, clientStatic: Fixtures.clientKey),
                peerAddress: String = "192.0.2.10") {
        self.policy = policy
        client = try! ClientSession(mode: mode)
        server = ServerSession(staticKey: Fixtures.serverKey, peerAddress: peerAddress)
    }

    public mutating func establish(_ start: ClientStart = ClientStart()) throws {
        try client.start(start, now: now)
        pump()
    }

    public mutating func pump() {
        for _ in 0..<50 {
            var moved = false
            if client.outboundByteCount > 0 {
                let bytes = client.drainOutbound { Array($0) }
                var events: [String] = []
                var opened: [(UInt32, ApplicationGrant)] = []
                var closed: [(UInt32, USPError.Code)] = []
                var invalidated: [TokenProof.TokenID] = []
                var deferredLogin: ([String: JSONValue], SessionContext)?
                let record: (ServerAction) -> Void = { e in
                    switch e {
                    case .streamOpened(let s, let g): opened.append((s, g)); events.append("opened \(s) \(g.application)")
                    case .streamClosed(let s, let c): closed.append((s, c)); events.append("closed \(s) \(c.name)")
                    case .tokensInvalidated(let ids): invalidated += ids; events.append("invalidated \(ids.count)")
                    case .authenticated(let who, _): events.append("authenticated \(who.name)")
                    case .closed(let err): events.append("session closed \(err?.code.name ?? "ok")")
                    case .authenticationRequested(let fields, let ctx): deferredLogin = (fields, ctx); events.append("login deferred")
                    default: break
                    }
                }
                server.receive(bytes, now: now, delegate: policy, onEvent: record)
                // Play the shell: check a deferred (password) login, as uspd does on its thread pool.
                while let (fields, ctx) = deferredLogin {
                    deferredLogin = nil
                    server.completeAuthentication(policy.authenticate(fields: fields, context: ctx), now: now, delegate: policy, onEvent: record)
                }
                serverEvents += events
                for (s, g) in opened { self.opened[s] = g }
                for (s, c) in closed { serverClosedStreams[s] = c }
                self.invalidated += invalidated
                moved = true
            }
            if server.outboundByteCount > 0 {
                let bytes = server.drainOutbound { Array($0) }
                var log = self.log
                client.receive(bytes, now: now, delegate: TrustAnyServerKey()) { log.add($0) }
                self.log = log
                moved = true
            }
            if !moved { return }
        }
    }

    public mutating func request(_ services: [ServiceIndex: [String: JSONValue]], authentication: AuthenticationRequest? = nil,
                                 authorizationToken: String? = nil, clientIP: String? = nil) throws {
        try client.requestServices(services, authentication: authentication, authorizationToken: authorizationToken, clientIP: clientIP)
        pump()
    }

    public mutating func login(_ user: String, _ password: String) throws {
        try request([:], authentication: .credentials(["auth_method": "password", "user": .string(user), "password": .string(password)]))
    }
}
