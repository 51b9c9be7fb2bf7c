import USPCore

/// One live session as an administrator sees it (`uspd sessions`, `wg show`-like): who, from
/// where, since when, how much, and its open streams. Times are seconds, relative to the moment
/// the snapshot was taken; bytes are counted on the wire (sessions) and as payload (streams).
public struct ServerSessionSnapshot: Sendable {
    public struct Stream: Sendable {
        public let id: UInt32
        public let application: String
        public let tokenID: TokenProof.TokenID
        /// The login the application token was issued under, if any.
        public let authorizationTokenID: TokenProof.TokenID?
        public let age: Double
        /// Payload from the client to the application, and back.
        public let bytesIn: Int64
        public let bytesOut: Int64
    }

    public let serverSessionID: String
    public let peerAddress: String
    public let identity: Identity?
    public let clientStatic: [UInt8]?
    /// nil until the handshake is done.
    public let pattern: HandshakeLayout.Pattern?
    public let state: ServerSession.State
    public let age: Double
    /// Seconds since the client last sent anything.
    public let idle: Double
    public let bytesIn: Int64
    public let bytesOut: Int64
    /// A shaped application's stream is open: the whole connection is shaped.
    public let shaped: Bool
    public let streams: [Stream]
}
