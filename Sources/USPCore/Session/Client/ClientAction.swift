/// What a client session asks of its I/O shell (appended to a `ClientActions` buffer). The bytes
/// to send are not an action: they wait in the session, in record order, for `drainOutbound`.
public enum ClientAction: SessionAction {
    /// The handshake finished. `earlyDataAccepted` says whether message 1's early frames were acted on
    /// (if not, the session already sent them again).
    case handshakeCompleted(pattern: HandshakeLayout.Pattern, serverStatic: [UInt8], earlyDataAccepted: Bool)
    /// The application menu (after the initial request, and again after a login).
    case menu(ApplicationMenu)
    /// The per-index reply to `requestServices`.
    case serviceReply(ServiceReply)
    /// The reply to an `application_session` action (begin on a dedicated connection, end, or app-defined).
    case applicationSessionReply(ApplicationSessionReply)
    /// The server's session-level error, sent just before it closes.
    case serverError(WireError)
    /// The server accepted a stream opened with `openStream` or by an application_session begin.
    case streamAccepted(stream: UInt32)
    case streamRejected(stream: UInt32, code: USPError.Code, message: String)
    case streamData(stream: UInt32, data: ArraySlice<UInt8>)
    case streamFinished(stream: UInt32)
    case streamClosed(stream: UInt32, code: USPError.Code)
    case streamWritable(stream: UInt32)
    /// The server turned traffic shaping on (a profile) or off (nil): while it is on, the shell
    /// calls `tick` every `tickMilliseconds` (docs/PROTOCOL.md §4.1).
    case shaping(ShapingProfile?)
    /// The session is over: nil for a clean CLOSE, else the reason.
    case closed(USPError?)

    public func attaching(_ data: ArraySlice<UInt8>) -> ClientAction {
        if case .streamData(let stream, _) = self { return .streamData(stream: stream, data: data) }
        return self
    }
}

/// A client session's actions buffer.
public typealias ClientActions = SessionActions<ClientAction>
