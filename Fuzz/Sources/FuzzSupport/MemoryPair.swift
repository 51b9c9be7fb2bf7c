import USPCore

/// A real client and server session joined in memory, with deterministic randomness and the
/// fuzz policy: what the seed generators use to record genuine wire bytes (message 1, records,
/// a relay-free snapshot).
public struct MemoryPair {
    public var client: ClientSession
    public var server: ServerSession
    public let policy: FuzzPolicy
    public let now = FuzzKeys.now
    /// Every byte the client sent, from message 1 on.
    public private(set) var toServer: [UInt8] = []
    /// The server's streams' data, by stream, as the server delivered it (not consumed).
    public private(set) var serverData: [UInt32: [UInt8]] = [:]
    /// True while the server should take bytes it received off its books at once.
    public var serverConsumes = true

    public init(mode: InitiatorHandshake.Mode, seed: UInt64 = 1) {
        let random = FixedRandom(seed: seed)
        policy = FuzzPolicy(random: FixedRandom(seed: seed &+ 1))
        client = try! ClientSession(mode: mode, random: random, ephemeral: FuzzKeys.clientEphemeral)
        server = ServerSession(staticKey: FuzzKeys.server, peerAddress: "192.0.2.10", random: FixedRandom(seed: seed &+ 2),
                               ephemeral: FuzzKeys.serverEphemeral)
    }

    public static let knownServer = InitiatorHandshake.Mode.knownServer(serverKey: FuzzKeys.server.publicKey, clientStatic: FuzzKeys.client)
    public static let anonymous = InitiatorHandshake.Mode.anonymous(serverKey: FuzzKeys.server.publicKey)
    public static let firstContact = InitiatorHandshake.Mode.firstContact(clientStatic: FuzzKeys.client)

    /// Moves bytes both ways until neither side has anything to send.
    public mutating func pump() {
        var clientActions = ClientActions()
        var serverActions = ServerActions()
        for _ in 0..<100 {
            var moved = false
            if client.outboundByteCount > 0 {
                let bytes = client.drainOutbound { Array($0) }
                toServer += bytes
                serverActions.removeAll()
                server.receive(bytes, now: now, delegate: policy, into: &serverActions)
                var consumed: [(UInt32, Int)] = []
                for action in serverActions {
                    if case .streamData(let stream, let data) = action {
                        serverData[stream, default: []] += data
                        consumed.append((stream, data.count))
                    }
                }
                if serverConsumes { for (stream, count) in consumed { try? server.consumed(stream: stream, count: count) } }
                moved = true
            }
            if server.outboundByteCount > 0 {
                let bytes = server.drainOutbound { Array($0) }
                clientActions.removeAll()
                client.receive(bytes, now: now, delegate: TrustAnyServerKey(), into: &clientActions)
                moved = true
            }
            if !moved { return }
        }
    }

    /// The client's message 1 for `start`, as the server would receive it (nothing is pumped).
    public static func message1(_ mode: InitiatorHandshake.Mode, _ start: ClientStart = ClientStart()) -> [UInt8] {
        var pair = MemoryPair(mode: mode)
        try! pair.client.start(start, now: pair.now)
        return pair.client.drainOutbound { Array($0) }
    }
}
