import NIOCore
import USPCore

/// What the server around a `ServerSessionHandler` decides and records: which application runs
/// on a new stream, what the audit trail says, cross-session revocation, login slow-down.
/// Every method is called on the session channel's event loop.
public protocol ServerSessionHooks: AnyObject {
    /// The Noise handshake finished (the client's static key is known in IK and XX).
    func handshakeCompleted(_ handler: ServerSessionHandler, pattern: HandshakeLayout.Pattern, clientStatic: [UInt8]?)
    /// The session left its start-up phase: the menu or the application_session reply was sent.
    func sessionEstablished(_ handler: ServerSessionHandler)
    /// The client logged in (index 0) or presented a valid authorization token.
    func authenticated(_ handler: ServerSessionHandler, identity: Identity, tokenID: TokenProof.TokenID)
    /// A stream was opened with a valid application token: start the application, or refuse the
    /// stream with an error whose code the client gets in the RESET (`streamClosed` is then not
    /// called for it: the refusal is the whole story).
    func openApplication(_ port: ServerStreamPort, grant: ApplicationGrant, session: ServerSessionInfo)
        -> Result<any ServerStreamApplication, USPError>
    /// The traffic shaping a stream of this application asks for (docs/PROTOCOL.md §4.1): while
    /// such a stream is open the whole connection is shaped, both ways. nil (the default): none.
    func shapingProfile(for grant: ApplicationGrant) -> ShapingProfile?
    /// A stream ended; `bytesIn` came from the client, `bytesOut` went to it.
    func streamClosed(_ handler: ServerSessionHandler, stream: UInt32, grant: ApplicationGrant, code: USPError.Code,
                      bytesIn: Int64, bytesOut: Int64, seconds: Double)
    /// A dedicated connection's stream was handed to its application relay-free: the connection
    /// leaves this process (`sessionClosed` follows, with `handler.handedOff` set). `bytesIn` and
    /// `bytesOut` are counted up to the hand-off.
    func streamHandedOff(_ handler: ServerSessionHandler, stream: UInt32, grant: ApplicationGrant,
                         bytesIn: Int64, bytesOut: Int64, seconds: Double)
    /// Tokens were invalidated through index 0 of this session: end their streams everywhere else.
    func tokensInvalidated(_ handler: ServerSessionHandler, _ ids: [TokenProof.TokenID])
    /// Asked after every step that may have granted something (a token issued, a login): a future
    /// that succeeds once the grant's records are on disk. Until then the session sends nothing and
    /// reads nothing; if it fails, the grant never leaves (the connection is closed without a word).
    /// nil: nothing to wait for. The default waits for nothing.
    func durabilityBarrier(_ handler: ServerSessionHandler) -> EventLoopFuture<Void>?
    /// Asked after every batch of input: hold this session's reply (and its further input) this long,
    /// e.g. after a failed login. nil: answer now.
    func replyDelay(_ handler: ServerSessionHandler) -> TimeAmount?
    /// The session is over (nil: a clean CLOSE). Called once, after which the handler calls nothing more.
    func sessionClosed(_ handler: ServerSessionHandler, error: USPError?, bytesIn: Int64, bytesOut: Int64, seconds: Double)
    /// Checks a slow login (`ServerEvent.authenticationRequested`: a password hash) off the event
    /// loop; the future completes on `loop`. The default runs `policy.authenticate` right here.
    func authenticate(fields: [String: JSONValue], context: SessionContext, policy: any ServerSessionDelegate,
                      on loop: any EventLoop) -> EventLoopFuture<Result<AuthorizationGrant, USPError>>
}

extension ServerSessionHooks {
    public func durabilityBarrier(_ handler: ServerSessionHandler) -> EventLoopFuture<Void>? { nil }

    public func shapingProfile(for grant: ApplicationGrant) -> ShapingProfile? { nil }

    public func authenticate(fields: [String: JSONValue], context: SessionContext, policy: any ServerSessionDelegate,
                             on loop: any EventLoop) -> EventLoopFuture<Result<AuthorizationGrant, USPError>> {
        loop.makeSucceededFuture(policy.authenticate(fields: fields, context: context))
    }
}
