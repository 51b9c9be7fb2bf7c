import USPCore

/// The session data path in steady state: a client's DATA records (16 KiB of stream bytes each)
/// fed to an established `ServerSession`, its actions carried out as a shell does (each data
/// action's bytes read, credit returned with `consumed`, the WINDOW frames drained), with one
/// reused `ServerActions` buffer and one reused inbound buffer. It counts the heap allocations
/// per record of exactly that loop; the figure to keep is zero.
struct SessionBench {
    /// Accepts any application token and opens the stream for `bench`.
    private struct OpenPolicy: ServerSessionDelegate {
        func menu(for identity: Identity?, context: SessionContext) -> ApplicationMenu {
            ApplicationMenu(serverSessionID: context.serverSessionID,
                            applications: [ServiceIndex(1): ApplicationOffer(name: "bench", expectedRequestBody: [:])])
        }
        func authenticate(fields: [String: JSONValue], context: SessionContext) -> Result<AuthorizationGrant, USPError> {
            .failure(USPError(.authenticationFailed))
        }
        func validateAuthorizationToken(_ p: TokenProof.Presentation, context: SessionContext) -> Result<(Identity, TokenProof.TokenID), USPError> {
            .failure(USPError(.authorizationInvalid))
        }
        func issueApplicationToken(index: ServiceIndex, entry: ApplicationOffer, request: [String: JSONValue],
                                   authorizationTokenID: TokenProof.TokenID?, context: SessionContext) -> Result<String, USPError> {
            .success(TokenProof.issue(random: SystemRandomSource()).secret)
        }
        func validateApplicationToken(_ p: TokenProof.Presentation, context: SessionContext) -> Result<ApplicationGrant, USPError> {
            .success(ApplicationGrant(application: "bench", tokenID: p.id, authorizationTokenID: nil, identity: nil))
        }
        func invalidateTokens(_ tokens: [String], context: SessionContext) -> Result<[TokenProof.TokenID], USPError> { .success([]) }
        func performAction(_ action: String, grant: ApplicationGrant, parameters: [String: JSONValue]?,
                           context: SessionContext) -> Result<JSONValue, USPError> { .failure(USPError(.unknownAction)) }
        func admitEarlyData(clientEphemeral: [UInt8], timestamp: Timestamp, now: Timestamp) -> Bool { false }
    }

    static let payload = 16_384
    private var client: ClientSession
    private var server: ServerSession
    private var serverActions = ServerActions()
    private var clientActions = ClientActions()
    private var stream: UInt32 = 0
    private let data = [UInt8](repeating: 0x5a, count: payload)
    private var wire: [UInt8] = []
    /// What the server sends back (WINDOW credit), collected in reused storage.
    private var back: [UInt8] = []
    private let now = Timestamp(seconds: 1_800_000_000)
    private let policy = OpenPolicy()
    /// Bytes the "application" took, so the loop's work is observable.
    private(set) var delivered = 0

    init() throws {
        let serverKey = try KeyPair(privateKey: [UInt8](repeating: 7, count: 32))
        // No REKEY inside the counted records: a rekey (every GiB by default) makes a new key
        // context, which allocates; it is counted per GiB, not per record.
        var configuration = SessionConfiguration()
        configuration.rekeyLimit = 1 << 50
        configuration.rekeyAfterBytes = 1 << 48
        server = ServerSession(staticKey: serverKey, peerAddress: "192.0.2.1", configuration: configuration)
        client = try ClientSession(mode: .anonymous(serverKey: serverKey.publicKey), configuration: configuration)
        try client.start(ClientStart(), now: now)
        pump()
        stream = try client.openStream(application: "bench")
        pump()
        guard server.state == .established, server.openStreamCount == 1 else {
            throw USPError(.internalError, "session bench: the stream did not open (\(server.state))")
        }
        wire.reserveCapacity(4 * (Self.payload + 64))
        back.reserveCapacity(4096)
    }

    /// Moves bytes both ways until quiet (set-up only; allocates freely).
    private mutating func pump() {
        for _ in 0..<20 {
            var moved = false
            if client.outboundByteCount > 0 {
                let bytes = client.drainOutbound { Array($0) }
                server.receive(bytes, now: now, delegate: policy, into: &serverActions)
                serverActions.removeAll()
                moved = true
            }
            if server.outboundByteCount > 0 {
                let bytes = server.drainOutbound { Array($0) }
                client.receive(bytes, now: now, delegate: TrustAnyServerKey(), into: &clientActions)
                clientActions.removeAll()
                moved = true
            }
            if !moved { return }
        }
    }

    /// Sends `records` records from the client (untimed, uncounted), then feeds them to the server
    /// in one read and carries out its actions; returns the server-side nanoseconds.
    mutating func run(records: Int, countAllocs: Bool = false) throws -> UInt64 {
        wire.removeAll(keepingCapacity: true)
        for _ in 0..<records {
            let n = try data.withUnsafeBytes { try client.write(stream: stream, $0) }
            guard n == Self.payload else { throw USPError(.flowControl, "session bench: no credit (\(n) taken)") }
            client.drainOutbound { wire.append(contentsOf: $0) }
        }
        let start = nowNanoseconds()
        if countAllocs { AllocCounter.start() }
        wire.withUnsafeBytes { server.receive($0, now: now, delegate: policy, into: &serverActions) }
        var taken = 0
        for action in serverActions {
            if case .streamData(_, let bytes) = action { taken += bytes.withUnsafeBytes { $0.count } }
        }
        serverActions.removeAll()
        try server.consumed(stream: stream, count: taken)
        server.drainOutbound { back.append(contentsOf: $0) }
        if countAllocs { AllocCounter.stop() }
        let elapsed = nowNanoseconds() - start
        delivered &+= taken
        // The client takes the WINDOW credit back (uncounted).
        pumpCredit()
        return elapsed
    }

    private mutating func pumpCredit() {
        if !back.isEmpty {
            back.withUnsafeBytes { client.receive($0, now: now, delegate: TrustAnyServerKey(), into: &clientActions) }
            clientActions.removeAll()
            back.removeAll(keepingCapacity: true)
        }
    }
}
