/// What a server session asks of its I/O shell (appended to a `ServerActions` buffer). The bytes
/// to send are not an action: they wait in the session, in record order, for `drainOutbound`.
public enum ServerAction: SessionAction {
    /// The handshake finished. `earlyDataAccepted` says whether message 1's early frames were acted on.
    case handshakeCompleted(pattern: HandshakeLayout.Pattern, clientStatic: [UInt8]?, earlyDataAccepted: Bool)
    /// The client logged in at index 0.
    case authenticated(Identity, tokenID: TokenProof.TokenID)
    /// A stream was opened with a valid application token: start the application and hand it the stream.
    case streamOpened(stream: UInt32, grant: ApplicationGrant)
    /// Bytes from the client on `stream`. Call `consumed(stream:count:)` once the application took them.
    case streamData(stream: UInt32, data: ArraySlice<UInt8>)
    /// The client half-closed `stream` (no more data from it).
    case streamFinished(stream: UInt32)
    /// The stream is gone: both sides finished (`code == .ok`), or it was reset.
    case streamClosed(stream: UInt32, code: USPError.Code)
    /// The client granted credit: `write` can send more on `stream`.
    case streamWritable(stream: UInt32)
    /// Tokens were invalidated through index 0; the server ends their streams everywhere.
    case tokensInvalidated([TokenProof.TokenID])
    /// A login whose check is slow (the delegate said so: a password hash) waits for the shell:
    /// run `delegate.authenticate(fields:context:)` off the event loop, then call
    /// `completeAuthentication(_:now:delegate:into:)`. Until then the session processes no input
    /// (it keeps it); stop reading the socket meanwhile.
    case authenticationRequested(fields: [String: JSONValue], context: SessionContext)
    /// The session is over: nil for a clean CLOSE, else the reason. Drain the outbound bytes, then close.
    case closed(USPError?)

    public func attaching(_ data: ArraySlice<UInt8>) -> ServerAction {
        if case .streamData(let stream, _) = self { return .streamData(stream: stream, data: data) }
        return self
    }
}

/// A server session's actions buffer.
public typealias ServerActions = SessionActions<ServerAction>
