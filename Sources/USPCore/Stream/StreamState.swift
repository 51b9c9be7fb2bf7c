/// A snapshot of one live stream in a `StreamTable`.
///
/// Receive accounting keeps `receiveCredit + buffered + unannounced == localInitialWindow`,
/// so `buffered` never exceeds the local window.
public struct StreamState: Equatable, Sendable {
    public enum Phase: Equatable, Sendable {
        /// Client: OPEN sent, no ACCEPT yet. DATA may already be sent (up to the peer's initial window).
        case opening
        /// Server: OPEN received, the caller has not yet called `accept` or `reject`.
        /// DATA from the peer is already counted against the window.
        case pending
        /// Accepted: both sides know both ids.
        case open
    }

    /// This side's id for the stream (what this side's DATA/WINDOW/FIN/RESET carry).
    public let localID: UInt32
    /// The peer's id for the stream (what the peer's frames carry); nil while opening.
    public internal(set) var peerID: UInt32?
    public internal(set) var phase: Phase
    /// This side sent FIN: it sends no more DATA.
    public internal(set) var localFinished = false
    /// The peer sent FIN: it sends no more DATA.
    public internal(set) var peerFinished = false
    /// Bytes this side may still send.
    public internal(set) var sendCredit: Int
    /// Bytes the peer may still send before it must wait for a WINDOW.
    public internal(set) var receiveCredit: Int
    /// Bytes received but not yet consumed by the application.
    public internal(set) var buffered = 0
    /// Bytes consumed by the application but not yet returned to the peer by a WINDOW.
    public internal(set) var unannounced = 0

    init(localID: UInt32, peerID: UInt32?, phase: Phase, sendCredit: Int, receiveCredit: Int) {
        self.localID = localID
        self.peerID = peerID
        self.phase = phase
        self.sendCredit = sendCredit
        self.receiveCredit = receiveCredit
    }
}
