import Foundation
import Testing
@testable import USPCore
import USPTestSupport

/// Owned copies of events, for assertions.
enum Seen: Equatable {
    case handshake(HandshakeLayout.Pattern, early: Bool)
    case authenticated(String)
    case opened(UInt32, String)
    case data(UInt32, [UInt8])
    case finished(UInt32)
    case closedStream(UInt32, USPError.Code)
    case writable(UInt32)
    case shaping(ShapingProfile?)
    case invalidated(Int)
    case closed(USPError.Code?)
    case menu([UInt32])
    case reply([UInt32: String])
    case appReply(String)
    case serverError(USPError.Code)
    case accepted(UInt32)
    case rejected(UInt32, USPError.Code)
    case authenticationRequested(String)

    init(_ e: ServerAction) {
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
        case .authenticationRequested(let fields, _): self = .authenticationRequested(fields["user"]?.stringValue ?? "")
        }
    }

    init(_ e: ClientAction) {
        switch e {
        case .handshakeCompleted(let p, _, let early): self = .handshake(p, early: early)
        case .menu(let m): self = .menu(m.applications.keys.map(\.rawValue).sorted())
        case .serviceReply(let r): self = .reply(r.resultNames)
        case .applicationSessionReply(let r): self = .appReply(r.outcomeName)
        case .serverError(let e): self = .serverError(e.code)
        case .streamAccepted(let s): self = .accepted(s)
        case .streamRejected(let s, let c, _): self = .rejected(s, c)
        case .streamData(let s, let d): self = .data(s, Array(d))
        case .streamFinished(let s): self = .finished(s)
        case .streamClosed(let s, let c): self = .closedStream(s, c)
        case .streamWritable(let s): self = .writable(s)
        case .shaping(let p): self = .shaping(p)
        case .closed(let e): self = .closed(e?.code)
        }
    }
}

/// A client and a server session joined in memory. `pump()` moves bytes both ways until quiet,
/// counting flights (each direction change is one half round trip). Every byte delivered is also
/// logged per direction, so `clientRecords()`/`serverRecords()` can open them afterwards.
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
    var serverRaw: [ServerAction] { [] }
    /// What the client was told, in full.
    var menus: [ApplicationMenu] = []
    var serviceReplies: [ServiceReply] = []
    var applicationReplies: [ApplicationSessionReply] = []
    var grants: [UInt32: ApplicationGrant] = [:]
    /// Every byte delivered, per direction, handshake messages included.
    var toServerWire: [UInt8] = []
    var toClientWire: [UInt8] = []
    var clientDelegate: any ClientSessionDelegate = TrustAnyServerKey()

    static let serverKey = try! KeyPair(privateKey: [UInt8](repeating: 7, count: 32))
    static let clientKey = try! KeyPair(privateKey: [UInt8](repeating: 9, count: 32))

    static func mode(_ pattern: HandshakeLayout.Pattern) -> InitiatorHandshake.Mode {
        switch pattern {
        case .xx: .firstContact(clientStatic: clientKey)
        case .ik: .knownServer(serverKey: serverKey.publicKey, clientStatic: clientKey)
        case .nk: .anonymous(serverKey: serverKey.publicKey)
        }
    }

    init(mode: InitiatorHandshake.Mode, policy: TestPolicy = TestPolicy(), peerAddress: String = "192.0.2.10",
         configuration: SessionConfiguration = SessionConfiguration(), serverConfiguration: SessionConfiguration? = nil,
         allowFirstContact: Bool = true, seed: UInt64 = 1) {
        self.policy = policy
        client = try! ClientSession(mode: mode, configuration: configuration, random: SeededRandom(seed: seed))
        server = ServerSession(staticKey: Self.serverKey, peerAddress: peerAddress, configuration: serverConfiguration ?? configuration,
                               allowFirstContact: allowFirstContact, random: SeededRandom(seed: seed + 1000))
    }

    init(_ pattern: HandshakeLayout.Pattern, policy: TestPolicy = TestPolicy(), peerAddress: String = "192.0.2.10",
         client configuration: SessionConfiguration = SessionConfiguration(), server serverConfiguration: SessionConfiguration? = nil,
         allowFirstContact: Bool = true, seed: UInt64 = 1) {
        self.init(mode: Self.mode(pattern), policy: policy, peerAddress: peerAddress, configuration: configuration,
                  serverConfiguration: serverConfiguration, allowFirstContact: allowFirstContact, seed: seed)
    }

    static func ik(policy: TestPolicy = TestPolicy(), peerAddress: String = "192.0.2.10") -> SessionPair {
        SessionPair(mode: .knownServer(serverKey: serverKey.publicKey, clientStatic: clientKey), policy: policy, peerAddress: peerAddress)
    }

    mutating func start(_ request: ClientStart = ClientStart()) throws {
        try client.start(request, now: now)
    }

    /// Starts and pumps until both sides are quiet.
    mutating func establish(_ request: ClientStart = ClientStart()) throws {
        try start(request)
        pump()
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
        toServerWire += bytes
        var seen: [Seen] = []
        var data: [(UInt32, [UInt8])] = []
        var opened: [(UInt32, ApplicationGrant)] = []
        server.receive(bytes, now: now, delegate: policy) { e in
            seen.append(Seen(e))
            if case .streamData(let s, let d) = e { data.append((s, Array(d))) }
            if case .streamOpened(let s, let g) = e { opened.append((s, g)) }
        }
        serverSeen += seen
        for (s, d) in data { serverData[s, default: []] += d }
        for (s, g) in opened { grants[s] = g }
    }

    mutating func deliverToClient(_ bytes: [UInt8]) {
        toClientWire += bytes
        var seen: [Seen] = []
        var data: [(UInt32, [UInt8])] = []
        var menus: [ApplicationMenu] = []
        var replies: [ServiceReply] = []
        var appReplies: [ApplicationSessionReply] = []
        client.receive(bytes, now: now, delegate: clientDelegate) { e in
            seen.append(Seen(e))
            switch e {
            case .streamData(let s, let d): data.append((s, Array(d)))
            case .menu(let m): menus.append(m)
            case .serviceReply(let r): replies.append(r)
            case .applicationSessionReply(let r): appReplies.append(r)
            default: break
            }
        }
        clientSeen += seen
        for (s, d) in data { clientData[s, default: []] += d }
        self.menus += menus
        serviceReplies += replies
        applicationReplies += appReplies
    }

    /// The server's end of input (the client closed TCP), recording events.
    mutating func serverEndOfInput() {
        var seen: [Seen] = []
        server.endOfInput { seen.append(Seen($0)) }
        serverSeen += seen
    }

    mutating func clientEndOfInput() {
        var seen: [Seen] = []
        client.endOfInput { seen.append(Seen($0)) }
        clientSeen += seen
    }

    /// The token string of index `i` in the last service reply the client got.
    func lastToken(_ index: UInt32, in replies: [ServiceReply]) -> String? {
        for r in replies.reversed() { if case .token(let t)? = r.results[ServiceIndex(index)] { return t } }
        return nil
    }

    // MARK: - Conveniences

    /// Sends a service request and pumps; returns the reply.
    @discardableResult
    mutating func request(_ services: [ServiceIndex: [String: JSONValue]], authentication: AuthenticationRequest? = nil,
                          authorizationToken: String? = nil, clientIP: String? = nil,
                          sourceLocation: SourceLocation = #_sourceLocation) throws -> ServiceReply {
        let before = serviceReplies.count
        try client.requestServices(services, authentication: authentication, authorizationToken: authorizationToken, clientIP: clientIP)
        pump()
        return try #require(serviceReplies.count == before + 1 ? serviceReplies.last : nil, sourceLocation: sourceLocation)
    }

    /// Logs in as alice; returns the authorization token secret.
    mutating func login(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let reply = try request([:], authentication: .credentials(["user": "alice", "password": "correct horse"]),
                                sourceLocation: sourceLocation)
        guard case .token(let t)? = reply.results[.authentication] else {
            Issue.record("login failed: \(reply)", sourceLocation: sourceLocation)
            throw USPError(.authenticationFailed)
        }
        return t
    }

    /// Asks for an application token at `index`.
    mutating func token(_ index: UInt32, _ body: [String: JSONValue] = [:], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let reply = try request([ServiceIndex(index): body], sourceLocation: sourceLocation)
        guard case .token(let t)? = reply.results[ServiceIndex(index)] else {
            Issue.record("no token for \(index): \(reply)", sourceLocation: sourceLocation)
            throw USPError(.tokenInvalid)
        }
        return t
    }

    /// Client writes (as much as credit allows), then pumps. Returns bytes taken.
    @discardableResult
    mutating func clientWrite(_ stream: UInt32, _ bytes: [UInt8]) throws -> Int {
        let n = try bytes.withUnsafeBytes { try client.write(stream: stream, $0) }
        pump()
        return n
    }

    @discardableResult
    mutating func serverWrite(_ stream: UInt32, _ bytes: [UInt8]) throws -> Int {
        let n = try bytes.withUnsafeBytes { try server.write(stream: stream, $0) }
        pump()
        return n
    }

    /// Crafted frames from the client after the handshake (no checks), then pump.
    mutating func clientSends(_ frames: [Frame]) throws {
        try client._sendRawRecord(frames.flatMap(\.encoded))
        pump()
    }

    mutating func serverSends(_ frames: [Frame]) throws {
        try server._sendRawRecord(frames.flatMap(\.encoded))
        pump()
    }

    /// The bytes of the handshake messages at the start of each direction.
    var clientHandshakeLength: Int { HandshakeLayout.message1Length + (client.pattern == .xx ? HandshakeLayout.message3Length : 0) }

    /// Opens every record the client sent so far (with a copy of the server's receiving key).
    func clientRecords() throws -> [TappedRecord] {
        var tap = RecordTap(receiving: try #require(server.handshake).transport.receive)
        return try tap.feed(Array(toServerWire.dropFirst(clientHandshakeLength)))
    }

    /// Opens every record the server sent so far (with a copy of the client's receiving key).
    func serverRecords() throws -> [TappedRecord] {
        var tap = RecordTap(receiving: try #require(client.handshake).transport.receive)
        return try tap.feed(Array(toClientWire.dropFirst(HandshakeLayout.message2Length)))
    }

    /// Seals records as the client would, continuing after the records it sent so far.
    func clientForger() throws -> RecordForger {
        RecordForger(sending: try #require(client.handshake).transport.send, startingAt: UInt64(try clientRecords().count))
    }

    func serverForger() throws -> RecordForger {
        RecordForger(sending: try #require(server.handshake).transport.send, startingAt: UInt64(try serverRecords().count))
    }

    /// Drains the server's output without handing it to the client, and opens it. The bytes
    /// count as sent (they are logged), so the client must not be used to receive afterwards.
    mutating func takeServerRecords() throws -> [TappedRecord] {
        var tap = RecordTap(receiving: try #require(client.handshake).transport.receive, startingAt: UInt64(try serverRecords().count))
        let bytes = server.drainOutbound { Array($0) }
        toClientWire += bytes
        return try tap.feed(bytes)
    }

    /// Crafted frames from the client delivered to the server only; returns what the server answered.
    mutating func clientSendsAndTakesAnswer(_ frames: [Frame]) throws -> [Frame] {
        try client._sendRawRecord(frames.flatMap(\.encoded))
        deliverToServer(client.drainOutbound { Array($0) })
        return try takeServerRecords().flatMap(\.frames)
    }

    /// XX up to the end of the handshake, with the client's initial request held back: the server
    /// waits in `awaitingInitialRequest` and the client in `awaitingReply`.
    mutating func handshakeWithoutInitialRequest() throws {
        precondition(client.pattern == .xx)
        try start()
        deliverToServer(client.drainOutbound { Array($0) })
        deliverToClient(server.drainOutbound { Array($0) })
        let out = client.drainOutbound { Array($0) }
        deliverToServer(Array(out[0..<HandshakeLayout.message3Length]))
    }

    /// The `.closed` event the server reported, if any (`.some(nil)`: a clean close).
    var serverClosed: USPError.Code?? {
        for e in serverSeen { if case .closed(let c) = e { return .some(c) } }
        return nil
    }

    var clientClosed: USPError.Code?? {
        for e in clientSeen { if case .closed(let c) = e { return .some(c) } }
        return nil
    }
}

extension ServiceReply {
    /// The error code at `index`, if it is an error.
    func code(_ index: UInt32) -> USPError.Code? {
        if case .error(let e)? = results[ServiceIndex(index)] { return e.code }
        return nil
    }

    func token(_ index: UInt32) -> String? {
        if case .token(let t)? = results[ServiceIndex(index)] { return t }
        return nil
    }
}

/// A MESSAGE frame carrying `message`.
func messageFrame(_ message: SessionMessage) throws -> Frame {
    let bytes = try message.encode()
    return .message(kind: bytes[0], json: Array(bytes.dropFirst()))
}

/// A client delegate that refuses every server key.
struct RefuseServerKey: ClientSessionDelegate {
    func acceptServerKey(_ key: [UInt8]) -> Bool { false }
}

struct TappedRecord {
    /// The plaintext length (padding included), as the header says.
    let length: Int
    /// The frames, without the padding that ends the record.
    let frames: [Frame]
    /// Bytes of padding at the end of the record (zeros, decoded as one PADDING frame).
    let padding: Int
    var wireLength: Int { length + RecordLayout.overhead }

    init(length: Int, decoded: [Frame]) {
        self.length = length
        if case .padding(let n)? = decoded.last {
            frames = Array(decoded.dropLast())
            padding = n
        } else {
            frames = decoded
            padding = 0
        }
    }
}

/// Opens one direction's records with a copy of the receiving key, to see what went over the wire.
/// Follows REKEY like a session does.
struct RecordTap {
    private var reader: RecordReader

    init(receiving cipher: CipherState, startingAt record: UInt64 = 0) {
        var c = cipher
        c.setNonce(2 * record)
        reader = RecordReader(opener: RecordOpener(cipher: c, maxPlaintext: RecordLayout.maxPlaintext, rekeyLimit: .max))
    }

    /// Feeds wire bytes; returns the records they complete.
    mutating func feed(_ bytes: [UInt8]) throws -> [TappedRecord] {
        reader.append(bytes)
        var out: [TappedRecord] = []
        while let record = try reader.nextRecord({ (p) throws(USPError) -> TappedRecord in
            TappedRecord(length: p.count, decoded: try Frame.decodeAll(Array(p)))
        }) {
            if record.frames.contains(.rekey) { try reader.opener.rekey() }
            out.append(record)
        }
        return out
    }
}

/// Seals records with a copy of one side's sending key, with nothing checked: any plaintext,
/// any declared length, any size.
struct RecordForger {
    var cipher: CipherState

    init(sending cipher: CipherState, startingAt record: UInt64 = 0) {
        self.cipher = cipher
        self.cipher.setNonce(2 * record)
    }

    /// One record: encrypted length header (`declaredLength`, by default the real one), then body.
    mutating func seal(plaintext: [UInt8], declaredLength: Int? = nil) -> [UInt8] {
        let length = declaredLength ?? plaintext.count
        let header = try! cipher.encryptWithAd([UInt8](), [UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)])
        let body = try! cipher.encryptWithAd([UInt8](), plaintext)
        return header + body
    }

    mutating func seal(_ frames: [Frame]) -> [UInt8] {
        seal(plaintext: frames.flatMap(\.encoded))
    }
}
