/// The client side of the USP handshake (docs/PROTOCOL.md §3): XX on first contact, IK when the
/// client knows the server key and shows its static key, NK when it knows the key and stays anonymous.
///
///     start --writeMessage1--> sentMessage1 --readMessage2--> finished            (IK, NK)
///                                          \-readMessage2--> awaitingMessage3 --writeMessage3--> finished (XX)
public struct InitiatorHandshake: Sendable {
    public enum Mode: Sendable {
        case firstContact(clientStatic: KeyPair)
        case knownServer(serverKey: [UInt8], clientStatic: KeyPair)
        case anonymous(serverKey: [UInt8])
    }

    public let pattern: HandshakeLayout.Pattern
    private var noise: HandshakeState
    private let random: any RandomSource
    private var localHello = Hello()
    private var serverHello: Hello?

    public init(mode: Mode, random: any RandomSource = SystemRandomSource(), ephemeral: KeyPair? = nil) throws(USPError) {
        self.random = random
        let prologue = HandshakeLayout.prologue
        switch mode {
        case .firstContact(let s):
            pattern = .xx
            noise = try noiseStep("handshake init") { () throws(NoiseError) in
                try HandshakeState(protocol: HandshakeLayout.xx, role: .initiator, prologue: prologue,
                                   localStatic: s, localEphemeral: ephemeral, random: random, ephemeralEncoding: .elligator2)
            }
        case .knownServer(let key, let s):
            pattern = .ik
            noise = try noiseStep("handshake init") { () throws(NoiseError) in
                try HandshakeState(protocol: HandshakeLayout.ik, role: .initiator, prologue: prologue,
                                   localStatic: s, localEphemeral: ephemeral, remoteStatic: key, random: random, ephemeralEncoding: .elligator2)
            }
        case .anonymous(let key):
            pattern = .nk
            noise = try noiseStep("handshake init") { () throws(NoiseError) in
                try HandshakeState(protocol: HandshakeLayout.nk, role: .initiator, prologue: prologue,
                                   localEphemeral: ephemeral, remoteStatic: key, random: random, ephemeralEncoding: .elligator2)
            }
        }
    }

    /// Room for early frames in message 1 (0 for XX, whose message 1 is not encrypted).
    public var earlyFrameCapacity: Int { HandshakeLayout.earlyFrameCapacity(pattern) }

    /// Message 1: exactly 1024 bytes. For IK and NK the payload is the hello, then `earlyFrames`,
    /// then zero padding (a PADDING frame). For XX the payload is random filler: no cleartext
    /// field of any kind is sent, and the hello follows in message 3.
    public mutating func writeMessage1(hello: Hello, earlyFrames: [UInt8] = []) throws(USPError) -> [UInt8] {
        try writeMessage1(hello: hello) { _ in earlyFrames }
    }

    /// Message 1 whose early frames are built from the early channel binding: `h` just before the
    /// payload is encrypted (docs/PROTOCOL.md §3.7). Token presentations in early frames sign it.
    public mutating func writeMessage1(hello: Hello, earlyFramesFor makeFrames: ([UInt8]) -> [UInt8]) throws(USPError) -> [UInt8] {
        localHello = hello
        let payloadLength = HandshakeLayout.message1PayloadLength(pattern)
        let pattern = self.pattern
        let capacity = earlyFrameCapacity
        let filler = pattern == .xx ? random.bytes(payloadLength) : []
        let out = try noiseStep("message 1") { () throws(NoiseError) in
            try noise.writeMessage { binding -> [UInt8] in
                if pattern == .xx { return filler }
                let frames = makeFrames(binding)
                precondition(frames.count <= capacity, "early frames exceed message 1's room; callers check earlyFrameCapacity")
                var w = WireWriter(capacity: payloadLength)
                hello.encode(into: &w)
                w.writeBytes(frames)
                w.writeZeros(payloadLength - w.count)
                return w.bytes
            }
        }
        assert(out.message.count == HandshakeLayout.message1Length)
        return out.message
    }

    public enum Message2Outcome: Sendable {
        /// IK or NK: the handshake is done.
        case finished(HandshakeResult)
        /// XX: the server's static key is known now; check it (trust on first use) and write message 3.
        case needMessage3(serverStatic: [UInt8], serverHello: Hello)
    }

    /// Reads message 2 (exactly 160 bytes). On error the state is unchanged.
    public mutating func readMessage2(_ bytes: [UInt8]) throws(USPError) -> Message2Outcome {
        guard bytes.count == HandshakeLayout.message2Length else {
            throw USPError(.handshakeFailed, "message 2: \(bytes.count) bytes, expected \(HandshakeLayout.message2Length)")
        }
        var next = noise
        let out = try noiseStep("message 2") { () throws(NoiseError) in try next.readMessage(bytes) }
        let hello = try Hello.decode(Array(out.payload.prefix(Hello.length)))
        let version = try Hello.negotiate(client: localHello, server: hello)
        noise = next
        serverHello = hello
        if let transport = out.transport {
            return .finished(try HandshakeResult(pattern: pattern, transport: transport, remoteStatic: transport.remoteStatic,
                                             localHello: localHello, peerHello: hello, version: version, localIsClient: true))
        }
        guard let rs = noise.remoteStatic else {
            throw USPError(.handshakeFailed, "message 2: XX carried no server static key")
        }
        return .needMessage3(serverStatic: rs, serverHello: hello)
    }

    /// XX message 3 (exactly 128 bytes): the client's static key and its hello.
    public mutating func writeMessage3(hello: Hello) throws(USPError) -> (message: [UInt8], result: HandshakeResult) {
        guard pattern == .xx, let serverHello else {
            preconditionFailure("writeMessage3 is only for XX after readMessage2")
        }
        localHello = hello
        let version = try Hello.negotiate(client: hello, server: serverHello)
        let out = try noiseStep("message 3") { () throws(NoiseError) in try noise.writeMessage(payload: hello.bytes) }
        guard let transport = out.transport else {
            throw USPError(.handshakeFailed, "message 3: handshake did not finish")
        }
        assert(out.message.count == HandshakeLayout.message3Length)
        return (out.message, try HandshakeResult(pattern: .xx, transport: transport, remoteStatic: transport.remoteStatic,
                                             localHello: hello, peerHello: serverHello, version: version, localIsClient: true))
    }

    /// The hash so far (for tests).
    public var handshakeHash: [UInt8] { noise.handshakeHash }
}
