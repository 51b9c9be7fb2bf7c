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

    /// `h`, the final handshake hash: the channel binding for proofs and tokens.
    public var handshakeHash: [UInt8] { transport.handshakeHash }
}
