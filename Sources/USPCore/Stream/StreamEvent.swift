/// What a peer frame did to the stream table; the caller acts on it (deliver data, wake a
/// writer, tell the application).
public enum StreamEvent: Equatable, Sendable {
    /// The frame names a stream this side already closed, reset or rejected (a late frame
    /// racing a RESET, for instance): drop it silently.
    case ignored
    /// ACCEPT: the client's stream `localID` is open; the server calls it `peerID`.
    case accepted(localID: UInt32, peerID: UInt32)
    /// REJECT: the client's stream `localID` was refused and is removed.
    case rejected(localID: UInt32, code: UInt16)
    /// DATA: deliver the frame's `count` bytes to the application for `localID`, which calls
    /// `consumed` as it reads them.
    case data(localID: UInt32, count: Int)
    /// WINDOW: `localID` may now send up to `available` bytes.
    case credit(localID: UInt32, available: Int)
    /// FIN: the peer sends no more on `localID`. `closed`: this side had already finished too,
    /// so the stream is closed and removed.
    case peerFinished(localID: UInt32, closed: Bool)
    /// RESET: `localID` was aborted in both directions and is removed.
    case reset(localID: UInt32, code: UInt16)
}

/// The server's answer to a peer's OPEN (`StreamTable.peerOpened`).
public enum StreamOpenDecision: Equatable, Sendable {
    /// Admitted: the stream exists as `pending` under `localID`; the caller applies its policy
    /// and calls `accept(peerID)` (then sends ACCEPT) or `reject(peerID)` (then sends REJECT).
    case pending(localID: UInt32)
    /// Refused without creating a stream: send REJECT with this code. The session continues.
    case refuse(USPError.Code)
}
