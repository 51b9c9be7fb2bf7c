/// Noise §5.3 HandshakeState, driven by the pattern's tokens, so every basic pattern and
/// the psk modifiers work. The suite is 25519_ChaChaPoly_SHA256 or 25519_AESGCM_SHA256.
///
/// A `readMessage` that fails (bad tag, low-order point, short message) leaves the state exactly
/// as it was before the call: it works on a copy and commits only on success.
public struct HandshakeState: Sendable {
    public enum Role: Sendable { case initiator, responder }

    public let protocolName: NoiseProtocol
    public let role: Role
    private(set) var symmetric: SymmetricState
    private var s: KeyPair?
    private var e: KeyPair?
    public private(set) var remoteStatic: [UInt8]?
    public private(set) var remoteEphemeral: [UInt8]?
    private var psks: [[UInt8]]
    private var messageIndex = 0
    private let random: any RandomSource
    /// DH results a caller already computed (local public, remote public, shared), so a responder
    /// that trial-decrypts one message under several patterns pays for each DH once.
    private var precomputedDH: [PrecomputedDH]
    /// How `e` travels. `.plain` is Noise's (the 32-byte public key). `.elligator2` is USP's
    /// extension: `e` is the key's Elligator 2 representative, which reads as uniform random bytes.
    /// Both sides hash the 32 bytes as sent (so the representative is bound into `h`), and DH uses the
    /// point it decodes to (docs/PROTOCOL.md §3.2.2).
    public let ephemeralEncoding: EphemeralEncoding
    /// Remote ephemerals a caller already decoded, so a responder that trial-decrypts one message
    /// under several patterns maps the representative once.
    private let decodedEphemerals: [DecodedEphemeral]

    public enum EphemeralEncoding: Sendable { case plain, elligator2 }

    public struct DecodedEphemeral: Sendable {
        public let representative: [UInt8]
        public let point: [UInt8]
        public init(representative: [UInt8], point: [UInt8]) {
            self.representative = representative
            self.point = point
        }
    }

    public struct PrecomputedDH: Sendable {
        public let localPublicKey: [UInt8]
        public let remotePublicKey: [UInt8]
        public let sharedSecret: [UInt8]
        public init(localPublicKey: [UInt8], remotePublicKey: [UInt8], sharedSecret: [UInt8]) {
            self.localPublicKey = localPublicKey
            self.remotePublicKey = remotePublicKey
            self.sharedSecret = sharedSecret
        }
    }

    public init(
        protocol proto: NoiseProtocol,
        role: Role,
        prologue: [UInt8] = [],
        localStatic: KeyPair? = nil,
        localEphemeral: KeyPair? = nil,
        remoteStatic: [UInt8]? = nil,
        remoteEphemeral: [UInt8]? = nil,
        psks: [[UInt8]] = [],
        random: any RandomSource = SystemRandomSource(),
        precomputedDH: [PrecomputedDH] = [],
        ephemeralEncoding: EphemeralEncoding = .plain,
        decodedEphemerals: [DecodedEphemeral] = []
    ) throws(NoiseError) {
        self.precomputedDH = precomputedDH
        self.ephemeralEncoding = ephemeralEncoding
        self.decodedEphemerals = decodedEphemerals
        self.protocolName = proto
        self.role = role
        self.s = localStatic
        self.e = localEphemeral
        self.remoteStatic = remoteStatic
        self.remoteEphemeral = remoteEphemeral
        self.psks = psks
        self.random = random
        symmetric = SymmetricState(protocolName: proto.name, cipher: proto.cipher)
        symmetric.mixHash(prologue)

        let pattern = proto.pattern
        if pattern.usesPSK {
            let needed = pattern.messages.reduce(0) { $0 + $1.filter { $0 == .psk }.count }
            guard psks.count == needed, psks.allSatisfy({ $0.count == 32 }) else { throw .missingKey("psk") }
        }
        // Pre-messages: the initiator's first, then the responder's (§7.1).
        for (tokens, isInitiatorSide) in [(pattern.initiatorPreMessage, true), (pattern.responderPreMessage, false)] {
            for token in tokens {
                let mine = (isInitiatorSide == (role == .initiator))
                switch token {
                case .s:
                    let key = mine ? s?.publicKey : remoteStatic
                    guard let key else { throw .missingKey(mine ? "s" : "rs") }
                    symmetric.mixHash(key)
                case .e:
                    let key = mine ? e?.publicKey : remoteEphemeral
                    guard let key else { throw .missingKey(mine ? "e" : "re") }
                    symmetric.mixHash(key)
                    if pattern.usesPSK { try symmetric.mixKey(key) }
                case .ee, .es, .se, .ss, .psk:
                    preconditionFailure("pre-messages carry only e and s tokens (§7.1)")
                }
            }
        }
        // Keys the pattern's messages will need must be present now (§5.3: a caller error otherwise).
        let sends = pattern.messages.enumerated().filter { ($0.offset % 2 == 0) == (role == .initiator) }
        if sends.contains(where: { $0.element.contains(.s) }) && s == nil { throw .missingKey("s") }
    }

    /// True when it is this party's turn to write.
    public var isMyTurn: Bool {
        !isFinished && ((messageIndex % 2 == 0) == (role == .initiator))
    }

    public var isFinished: Bool { messageIndex >= protocolName.pattern.messages.count }

    /// h, for channel binding. Final once the handshake is finished.
    public var handshakeHash: [UInt8] { symmetric.handshakeHash }

    /// `h` just before the payload of the last message written or read was encrypted or decrypted.
    public private(set) var hashBeforePayload: [UInt8] = []

    public var localStaticPublicKey: [UInt8]? { s?.publicKey }
    public var localEphemeralPublicKey: [UInt8]? { e?.publicKey }

    /// The result of the last handshake message: transport keys for each direction.
    public struct Transport: Sendable {
        public var send: CipherState
        public var receive: CipherState
        public let handshakeHash: [UInt8]
        public let remoteStatic: [UInt8]?
    }

    /// WriteMessage(payload, message_buffer). Returns the message, and the transport once finished.
    public mutating func writeMessage(payload: some Collection<UInt8> = [UInt8]()) throws(NoiseError) -> (message: [UInt8], transport: Transport?) {
        let bytes = Array(payload)
        return try writeMessage { _ in bytes }
    }

    /// WriteMessage where the payload is built from `h` as it stands just before the payload is
    /// encrypted (after every token of this message). USP binds early proofs to that value.
    public mutating func writeMessage(payloadFor makePayload: ([UInt8]) -> [UInt8]) throws(NoiseError) -> (message: [UInt8], transport: Transport?) {
        guard isMyTurn else { throw .wrongTurn }
        var next = self
        var out: [UInt8] = []
        let pattern = protocolName.pattern
        for token in pattern.messages[messageIndex] {
            switch token {
            case .e:
                let wire: [UInt8]
                switch ephemeralEncoding {
                case .plain:
                    let pair = next.e ?? KeyPair.generate(using: random)
                    next.e = pair
                    wire = pair.publicKey
                case .elligator2:
                    let pair = next.e ?? KeyPair.generateHidden(using: random)
                    guard let representative = pair.representative else { throw .missingKey("e's Elligator 2 representative") }
                    next.e = pair
                    wire = representative
                }
                out += wire
                next.symmetric.mixHash(wire)
                if pattern.usesPSK { try next.symmetric.mixKey(wire) }
            case .s:
                guard let st = next.s else { throw .missingKey("s") }
                out += try next.symmetric.encryptAndHash(st.publicKey)
            case .ee, .es, .se, .ss:
                try next.mixDH(token)
            case .psk:
                try next.symmetric.mixKeyAndHash(next.psks.removeFirst())
            }
        }
        next.hashBeforePayload = next.symmetric.handshakeHash
        out += try next.symmetric.encryptAndHash(makePayload(next.symmetric.handshakeHash))
        guard out.count <= CipherState.maxMessageLength else { throw .messageTooLong }
        next.messageIndex += 1
        self = next
        return (out, try finishIfDone())
    }

    /// ReadMessage(message, payload_buffer). Returns the payload, and the transport once finished.
    /// On any error the state is unchanged.
    public mutating func readMessage(_ message: some Collection<UInt8>) throws(NoiseError) -> (payload: [UInt8], transport: Transport?) {
        guard !isFinished, !isMyTurn else { throw .wrongTurn }
        let bytes = Array(message)
        guard bytes.count <= CipherState.maxMessageLength else { throw .messageTooLong }
        var next = self
        var offset = 0
        let pattern = protocolName.pattern
        for token in pattern.messages[messageIndex] {
            switch token {
            case .e:
                guard bytes.count - offset >= 32 else { throw .messageTooShort }
                let wire = Array(bytes[offset..<offset + 32])
                offset += 32
                switch ephemeralEncoding {
                case .plain:
                    next.remoteEphemeral = wire
                case .elligator2:
                    next.remoteEphemeral = decodedEphemerals.first(where: { $0.representative == wire })?.point
                        ?? Elligator2.point(from: wire)
                }
                next.symmetric.mixHash(wire)
                if pattern.usesPSK { try next.symmetric.mixKey(wire) }
            case .s:
                let len = 32 + (next.symmetric.cipherState.hasKey ? CipherState.tagLength : 0)
                guard bytes.count - offset >= len else { throw .messageTooShort }
                next.remoteStatic = try next.symmetric.decryptAndHash(bytes[offset..<offset + len])
                offset += len
            case .ee, .es, .se, .ss:
                try next.mixDH(token)
            case .psk:
                try next.symmetric.mixKeyAndHash(next.psks.removeFirst())
            }
        }
        if next.symmetric.cipherState.hasKey, bytes.count - offset < CipherState.tagLength { throw .messageTooShort }
        next.hashBeforePayload = next.symmetric.handshakeHash
        let payload = try next.symmetric.decryptAndHash(bytes[offset...])
        next.messageIndex += 1
        self = next
        return (payload, try finishIfDone())
    }

    private mutating func mixDH(_ token: HandshakePattern.Token) throws(NoiseError) {
        let initiator = role == .initiator
        let (local, remote): (KeyPair?, [UInt8]?)
        switch token {
        case .ee: (local, remote) = (e, remoteEphemeral)
        case .es: (local, remote) = initiator ? (e, remoteStatic) : (s, remoteEphemeral)
        case .se: (local, remote) = initiator ? (s, remoteEphemeral) : (e, remoteStatic)
        case .ss: (local, remote) = (s, remoteStatic)
        case .e, .s, .psk: preconditionFailure("mixDH is only called for DH tokens")
        }
        guard let local else { throw .missingKey("local key for \(token)") }
        guard let remote else { throw .missingKey("remote key for \(token)") }
        if let hit = precomputedDH.first(where: { $0.localPublicKey == local.publicKey && $0.remotePublicKey == remote }) {
            try symmetric.mixKey(hit.sharedSecret)
        } else {
            try symmetric.mixKey(X25519.dh(local, remote))
        }
    }

    private func finishIfDone() throws(NoiseError) -> Transport? {
        guard isFinished else { return nil }
        let (c1, c2) = try symmetric.split()
        let initiator = role == .initiator
        if protocolName.pattern.isOneWay {
            // One-way patterns only carry initiator → responder traffic (§7.4).
            return Transport(send: initiator ? c1 : CipherState(), receive: initiator ? CipherState() : c1,
                             handshakeHash: symmetric.handshakeHash, remoteStatic: remoteStatic)
        }
        return Transport(send: initiator ? c1 : c2, receive: initiator ? c2 : c1,
                         handshakeHash: symmetric.handshakeHash, remoteStatic: remoteStatic)
    }
}
