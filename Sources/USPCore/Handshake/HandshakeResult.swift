/// What a finished USP handshake hands to the record layer and to policy.
public struct HandshakeResult: Sendable {
    public let pattern: HandshakeLayout.Pattern
    /// Transport keys: `send` for records this side writes, `receive` for records it reads.
    public var transport: HandshakeState.Transport
    /// The peer's static public key (the client's in XX and IK; the server's on the client side).
    public let remoteStatic: [UInt8]?
    public let localHello: Hello
    public let peerHello: Hello
    /// The negotiated wire version.
    public let version: UInt8

    /// The cipher function of the records (both directions): AESGCM when both hellos offered it.
    public let recordCipher: CipherFunction

    /// `client` and `server` are the two hellos; `transport` comes from `Split()` (ChaChaPoly) and
    /// is moved to the records' cipher here, keys and nonces unchanged.
    init(pattern: HandshakeLayout.Pattern, transport: HandshakeState.Transport, remoteStatic: [UInt8]?,
         localHello: Hello, peerHello: Hello, version: UInt8, localIsClient: Bool) throws(USPError) {
        let cipher = localIsClient ? Hello.recordCipher(client: localHello, server: peerHello)
                                   : Hello.recordCipher(client: peerHello, server: localHello)
        var moved = transport
        do throws(NoiseError) {
            moved.send = try transport.send.under(cipher)
            moved.receive = try transport.receive.under(cipher)
        } catch {
            throw USPError(error, during: "setting up the \(cipher) record keys")
        }
        self.pattern = pattern
        self.transport = moved
        self.remoteStatic = remoteStatic
        self.localHello = localHello
        self.peerHello = peerHello
        self.version = version
        self.recordCipher = cipher
    }

    /// `h`, the final handshake hash: the channel binding for proofs and tokens.
    public var handshakeHash: [UInt8] { transport.handshakeHash }
}
