/// The server side of the USP handshake. It works out the client's pattern itself, by trial
/// decryption of the fixed-size message 1: IK first, then NK, then (unless stealth) XX.
///
/// In stealth (`allowFirstContact == false`) a message 1 that is neither IK nor NK under this
/// server's key throws before any byte is written, so the caller sends nothing at all.
///
///     awaitingMessage1 --readMessage1--> readMessage1 --writeMessage2--> finished        (IK, NK)
///                                                     \-writeMessage2--> awaitingMessage3 --readMessage3--> finished (XX)
public struct ResponderHandshake: Sendable {
    private let staticKey: KeyPair
    private let allowFirstContact: Bool
    private let random: any RandomSource
    private let fixedEphemeral: KeyPair?
    private var noise: HandshakeState?
    public private(set) var pattern: HandshakeLayout.Pattern?
    private var clientHello: Hello?
    private var localHello = Hello()

    public init(staticKey: KeyPair, allowFirstContact: Bool = true, random: any RandomSource = SystemRandomSource(), ephemeral: KeyPair? = nil) {
        self.staticKey = staticKey
        self.allowFirstContact = allowFirstContact
        self.random = random
        self.fixedEphemeral = ephemeral
    }

    public struct Message1: Sendable {
        public let pattern: HandshakeLayout.Pattern
        /// IK: the client's static key, proven by the `ss` DH. NK and XX: nil (XX's comes in message 3).
        public let clientStatic: [UInt8]?
        /// The client's ephemeral key, unique per handshake (the replay cache's key).
        public let clientEphemeral: [UInt8]
        /// IK and NK only.
        public let clientHello: Hello?
        /// IK and NK only: the frames the client sent early. They are replayable, so the caller acts
        /// on them only after a replay check (see `ReplayGuard`).
        public let earlyFrames: [UInt8]
        /// The channel binding for proofs inside the early frames: `h` just before the payload.
        public let earlyBinding: [UInt8]
    }

    /// Reads message 1 (exactly 1024 bytes).
    public mutating func readMessage1(_ bytes: [UInt8]) throws(USPError) -> Message1 {
        precondition(noise == nil, "readMessage1 is called once")
        guard bytes.count == HandshakeLayout.message1Length else {
            throw USPError(.handshakeFailed, "message 1: \(bytes.count) bytes, expected \(HandshakeLayout.message1Length)")
        }
        // `e` travels as an Elligator 2 representative (§3.2.2); map it to its point once for every trial.
        let representative = Array(bytes[0..<32])
        let re = Elligator2.point(from: representative)
        let decoded = [HandshakeState.DecodedEphemeral(representative: representative, point: re)]
        // es = DH(s, re) is common to the IK and NK trials: compute it once.
        let es = try noiseStep("message 1") { () throws(NoiseError) in try X25519.dh(staticKey, re) }
        let cached = [HandshakeState.PrecomputedDH(localPublicKey: staticKey.publicKey, remotePublicKey: re, sharedSecret: es)]
        for candidate in [HandshakeLayout.Pattern.ik, .nk] {
            var trial = try noiseStep("message 1") { () throws(NoiseError) in
                try HandshakeState(protocol: candidate.noiseProtocol, role: .responder, prologue: HandshakeLayout.prologue,
                                   localStatic: staticKey, localEphemeral: fixedEphemeral, random: random, precomputedDH: cached,
                                   ephemeralEncoding: .elligator2, decodedEphemerals: decoded)
            }
            let read: (payload: [UInt8], transport: HandshakeState.Transport?)
            do {
                read = try trial.readMessage(bytes)
            } catch .decryptFailed {
                continue
            } catch {
                throw USPError(error, during: "message 1 (\(candidate.rawValue))")
            }
            let hello = try Hello.decode(Array(read.payload.prefix(Hello.length)))
            noise = trial
            pattern = candidate
            clientHello = hello
            return Message1(pattern: candidate, clientStatic: trial.remoteStatic, clientEphemeral: re,
                            clientHello: hello, earlyFrames: Array(read.payload.dropFirst(Hello.length)),
                            earlyBinding: trial.hashBeforePayload)
        }
        guard allowFirstContact else {
            throw USPError(.patternNotAllowed, "message 1: neither IK nor NK under this server key, and first contact (XX) is off")
        }
        var xx = try noiseStep("message 1") { () throws(NoiseError) in
            try HandshakeState(protocol: HandshakeLayout.xx, role: .responder, prologue: HandshakeLayout.prologue,
                               localStatic: staticKey, localEphemeral: fixedEphemeral, random: random, precomputedDH: cached,
                               ephemeralEncoding: .elligator2, decodedEphemerals: decoded)
        }
        _ = try noiseStep("message 1 (XX)") { () throws(NoiseError) in try xx.readMessage(bytes) }
        noise = xx
        pattern = .xx
        return Message1(pattern: .xx, clientStatic: nil, clientEphemeral: re, clientHello: nil, earlyFrames: [], earlyBinding: [])
    }

    /// Message 2 (exactly 160 bytes). For IK and NK the handshake is finished and the result is returned.
    public mutating func writeMessage2(hello: Hello) throws(USPError) -> (message: [UInt8], result: HandshakeResult?) {
        guard var state = noise, let pattern else { preconditionFailure("writeMessage2 follows a successful readMessage1") }
        localHello = hello
        var version: UInt8 = 0
        if let clientHello { version = try Hello.negotiate(client: clientHello, server: hello) }
        var payload = hello.bytes
        payload += [UInt8](repeating: 0, count: HandshakeLayout.message2PayloadLength(pattern) - payload.count)
        let out = try noiseStep("message 2") { () throws(NoiseError) in try state.writeMessage(payload: payload) }
        noise = state
        assert(out.message.count == HandshakeLayout.message2Length)
        guard let transport = out.transport, let clientHello else { return (out.message, nil) }
        return (out.message, try HandshakeResult(pattern: pattern, transport: transport, remoteStatic: transport.remoteStatic,
                                             localHello: hello, peerHello: clientHello, version: version, localIsClient: false))
    }

    /// XX message 3 (exactly 128 bytes). On error the state is unchanged.
    public mutating func readMessage3(_ bytes: [UInt8]) throws(USPError) -> HandshakeResult {
        guard var state = noise, pattern == .xx else { preconditionFailure("readMessage3 is only for XX after writeMessage2") }
        guard bytes.count == HandshakeLayout.message3Length else {
            throw USPError(.handshakeFailed, "message 3: \(bytes.count) bytes, expected \(HandshakeLayout.message3Length)")
        }
        let out = try noiseStep("message 3") { () throws(NoiseError) in try state.readMessage(bytes) }
        let hello = try Hello.decode(Array(out.payload.prefix(Hello.length)))
        let version = try Hello.negotiate(client: hello, server: localHello)
        guard let transport = out.transport else { throw USPError(.handshakeFailed, "message 3: handshake did not finish") }
        noise = state
        clientHello = hello
        return try HandshakeResult(pattern: .xx, transport: transport, remoteStatic: transport.remoteStatic,
                               localHello: localHello, peerHello: hello, version: version, localIsClient: false)
    }
}
