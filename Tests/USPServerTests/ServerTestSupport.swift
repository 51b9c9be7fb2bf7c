import Dispatch
import Foundation
import Synchronization
import Testing
import USPConfig
import USPCore
import USPTestSupport
@testable import USPServer
import USPStore

/// A `USPStore` in memory, for policy and end-to-end tests. `failAudit` makes every audit append
/// throw, to check that security events fail closed.
class InMemoryStore: USPStore, @unchecked Sendable {
    private let lock = NSLock()
    private var usersByName: [String: UserRecord] = [:]
    private var tokens: [String: TokenRecord] = [:]
    private var rows: [AuditEvent] = []
    private var _failAudit = false

    var failAudit: Bool {
        get { lock.withLock { _failAudit } }
        set { lock.withLock { _failAudit = newValue } }
    }

    struct AuditUnavailable: Error {}
    struct SyncFailed: Error {}

    /// How long `syncDurably` takes (the disk's fsync, made slow), and whether it fails.
    private var _syncDelay: Double = 0
    private var _failSync = false
    private var _syncs = 0
    var syncDelay: Double {
        get { lock.withLock { _syncDelay } }
        set { lock.withLock { _syncDelay = newValue } }
    }
    var failSync: Bool {
        get { lock.withLock { _failSync } }
        set { lock.withLock { _failSync = newValue } }
    }
    /// Calls of `syncDurably` so far.
    var syncs: Int { lock.withLock { _syncs } }
    /// Signalled as each `syncDurably` starts and as it ends (a test waits on it from a thread,
    /// not by polling from a task that a busy machine may not wake in time).
    let syncStarted = DispatchSemaphore(value: 0)
    let syncEnded = DispatchSemaphore(value: 0)

    func syncDurably() throws {
        let (delay, fail) = lock.withLock { () -> (Double, Bool) in
            _syncs += 1
            return (_syncDelay, _failSync)
        }
        syncStarted.signal()
        defer { syncEnded.signal() }
        if delay > 0 { Thread.sleep(forTimeInterval: delay) }
        if fail { throw SyncFailed() }
    }

    func user(named name: String) throws -> UserRecord? { lock.withLock { usersByName[name] } }
    func users() throws -> [UserRecord] { lock.withLock { usersByName.values.sorted { $0.name < $1.name } } }
    func upsertUser(_ user: UserRecord) throws { lock.withLock { usersByName[user.name] = user } }
    func removeUser(named name: String) throws -> Bool { lock.withLock { usersByName.removeValue(forKey: name) != nil } }

    func insertToken(_ token: TokenRecord) throws { lock.withLock { tokens[token.id] = token } }
    func token(id: String) throws -> TokenRecord? { lock.withLock { tokens[id] } }
    func revokeTokens(ids: [String], at time: Date) throws -> [String] {
        lock.withLock {
            var done: [String] = []
            let wanted = Set(ids)
            for (id, t) in tokens where t.revokedAt == nil && (wanted.contains(id) || t.authorizationTokenID.map(wanted.contains) == true) {
                tokens[id]!.revokedAt = time
                done.append(id)
            }
            return done.sorted()
        }
    }
    func purgeExpiredTokens(before time: Date) throws -> Int {
        lock.withLock {
            let old = tokens.filter { $0.value.expiresAt < time }.map(\.key)
            for id in old { tokens[id] = nil }
            return old.count
        }
    }
    func tokensRevoked(after time: Date) throws -> (ids: [String], latest: Date?) {
        lock.withLock {
            let hits = tokens.values.filter { ($0.revokedAt ?? .distantPast) > time }.sorted { $0.revokedAt! < $1.revokedAt! }
            return (hits.map(\.id), hits.last?.revokedAt)
        }
    }
    /// Calls of `commit` so far (each one transaction in a real store).
    var commits: Int { lock.withLock { _commits } }
    private var _commits = 0

    func commit(_ writes: [StoreWrite], durable: Bool) throws {
        lock.withLock { _commits += 1 }
        for case .audit(let e) in writes { try appendAudit(e) }
        for case .token(let t) in writes { try insertToken(t) }
    }
    func appendAudit(_ event: AuditEvent) throws {
        try lock.withLock {
            if _failAudit { throw AuditUnavailable() }
            var e = event
            e.id = Int64(rows.count + 1)
            rows.append(e)
        }
    }
    func audit(identity: String?, since: Date?, limit: Int?) throws -> [AuditEvent] {
        lock.withLock {
            var r = rows.filter { e in (identity == nil || e.identity == identity) && (since == nil || e.time >= since!) }
            if let limit { r = Array(r.suffix(limit)) }
            return r
        }
    }

    var allAudit: [AuditEvent] { (try? audit(identity: nil, since: nil, limit: nil)) ?? [] }
    var allTokens: [TokenRecord] { lock.withLock { Array(tokens.values) } }
}

/// A settable monotonic clock for the login throttle.
final class TestClock: Sendable {
    private let value = Mutex(1000.0)
    var now: Double { value.withLock { $0 } }
    func advance(_ seconds: Double) { value.withLock { $0 += seconds } }
}

/// Passwords in in-memory tests are stored as "plain:<password>"; others (SQLite) as real scrypt hashes.
let testVerifyPassword: @Sendable (String, String) -> Bool = { password, hash in
    hash.hasPrefix("plain:") ? hash == "plain:" + password : ((try? PasswordHash.verify(password: password, hash: hash)) ?? false)
}

enum Fixtures {
    static let serverKey = try! KeyPair(privateKey: [UInt8](repeating: 7, count: 32))
    static let clientKey = try! KeyPair(privateKey: [UInt8](repeating: 9, count: 32))
    static let otherClientKey = try! KeyPair(privateKey: [UInt8](repeating: 11, count: 32))

    static func applications(tcpPort: Int = 9) -> [ApplicationDefinition] {
        [
            ApplicationDefinition(name: "echo", description: "cat", visibility: .public, launch: .exec(command: ["/bin/cat"], environment: [:])),
            ApplicationDefinition(name: "time", description: "the date", visibility: .public,
                                  expectedRequestBody: ["zone": "string?"], launch: .exec(command: ["/bin/date", "-u"], environment: [:])),
            ApplicationDefinition(name: "notes", description: "for members", visibility: .authenticated,
                                  launch: .tcp(host: "127.0.0.1", port: tcpPort)),
            ApplicationDefinition(name: "admin-only", visibility: .only(identities: [], groups: ["admins"]),
                                  launch: .exec(command: ["/bin/cat"], environment: [:])),
            ApplicationDefinition(name: "env", visibility: .public, expectedRequestBody: ["greeting": "string", "count": "integer?"],
                                  launch: .exec(command: ["/usr/bin/env"], environment: ["EXTRA": "yes"])),
            ApplicationDefinition(name: "solo", visibility: .only(identities: ["carol"], groups: []),
                                  launch: .exec(command: ["/bin/cat"], environment: [:]), limits: .init(maxSessions: 1)),
        ]
    }

    static func store() -> InMemoryStore {
        let store = InMemoryStore()
        try! store.upsertUser(UserRecord(name: "alice", groups: ["admins"], passwordHash: "plain:correct horse"))
        try! store.upsertUser(UserRecord(name: "bob", passwordHash: "plain:hunter2"))
        return store
    }

    static func policy(store: InMemoryStore, clock: TestClock = TestClock(), tcpPort: Int = 9) -> ServerPolicy {
        ServerPolicy(store: store, catalog: ApplicationCatalog(applications(tcpPort: tcpPort)), audit: AuditLog(store: store, flushInterval: .zero),
                     throttle: LoginThrottle(base: 0.25, maximum: 8), verifyPassword: testVerifyPassword,
                     monotonic: { clock.now })
    }
}

/// Owned copies of client events.
enum ClientNote: Equatable {
    case handshake(HandshakeLayout.Pattern)
    case menu([String])
    case reply([UInt32: String])
    case appReply(String)
    case serverError(String)
    case accepted(UInt32)
    case rejected(UInt32, String)
    case data(UInt32, [UInt8])
    case finished(UInt32)
    case streamClosed(UInt32, String)
    case writable(UInt32)
    case closed(String?)

    init(_ e: ClientAction) {
        switch e {
        case .handshakeCompleted(let p, _, _): self = .handshake(p)
        case .menu(let m):
            var names = m.applications.sorted { $0.key < $1.key }.map(\.value.name)
            switch m.authentication {
            case .methods(let methods)?: names.insert("0:" + methods.map(\.method).joined(separator: ","), at: 0)
            case .tokenInvalidation?: names.insert("0:invalidate", at: 0)
            case nil: break
            }
            self = .menu(names)
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
        case .serverError(let e): self = .serverError(e.code.name)
        case .streamAccepted(let s): self = .accepted(s)
        case .streamRejected(let s, let c, _): self = .rejected(s, c.name)
        case .streamData(let s, let d): self = .data(s, Array(d))
        case .streamFinished(let s): self = .finished(s)
        case .streamClosed(let s, let c): self = .streamClosed(s, c.name)
        case .streamWritable(let s): self = .writable(s)
        case .closed(let e): self = .closed(e?.code.name)
        }
    }
}

/// What a client learned, in full: menus, replies (with token secrets) and events.
struct ClientLog {
    var notes: [ClientNote] = []
    var menus: [ApplicationMenu] = []
    var replies: [ServiceReply] = []
    var data: [UInt32: [UInt8]] = [:]

    mutating func add(_ e: ClientAction) {
        notes.append(ClientNote(e))
        switch e {
        case .menu(let m): menus.append(m)
        case .serviceReply(let r): replies.append(r)
        case .streamData(let s, let d): data[s, default: []] += Array(d)
        default: break
        }
    }

    /// The index of application `name` on the last menu.
    func index(of name: String) -> ServiceIndex? {
        menus.last?.applications.first { $0.value.name == name }?.key
    }

    /// The token at `index` of the last reply.
    func token(at index: ServiceIndex) -> String? {
        if case .token(let t)? = replies.last?.results[index] { return t }
        return nil
    }

    func closedCode(_ stream: UInt32) -> String? {
        for n in notes { if case .streamClosed(stream, let c) = n { return c } }
        return nil
    }
}

/// A client and a server session joined in memory, the server driven by a `ServerPolicy`.
struct MemoryPair {
    var client: ClientSession
    var server: ServerSession
    let policy: ServerPolicy
    var now = Timestamp(seconds: 1_800_000_000)
    var log = ClientLog()
    var serverEvents: [String] = []
    var opened: [UInt32: ApplicationGrant] = [:]
    var serverClosedStreams: [UInt32: USPError.Code] = [:]
    var invalidated: [TokenProof.TokenID] = []

    init(policy: ServerPolicy, mode: InitiatorHandshake.Mode = .knownServer(serverKey: Fixtures.serverKey.publicKey, clientStatic: Fixtures.clientKey),
         peerAddress: String = "192.0.2.10") {
        self.policy = policy
        client = try! ClientSession(mode: mode)
        server = ServerSession(staticKey: Fixtures.serverKey, peerAddress: peerAddress)
    }

    mutating func establish(_ start: ClientStart = ClientStart()) throws {
        try client.start(start, now: now)
        pump()
    }

    mutating func pump() {
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

    mutating func request(_ services: [ServiceIndex: [String: JSONValue]], authentication: AuthenticationRequest? = nil,
                          authorizationToken: String? = nil) throws {
        try client.requestServices(services, authentication: authentication, authorizationToken: authorizationToken)
        pump()
    }

    mutating func login(_ user: String, _ password: String) throws {
        try request([:], authentication: .credentials(["auth_method": "password", "user": .string(user), "password": .string(password)]))
    }
}
