/// Per-session stream limits. Every field is enforced by `StreamTable`.
public struct StreamLimits: Equatable, Sendable {
    /// The smallest receive window a side may announce (16 KiB).
    public static let minInitialWindow = 16_384
    /// The largest receive window, and the most send credit a stream may accumulate (2^31-1).
    public static let maxWindow = 2_147_483_647
    /// The announceable initial windows.
    public static let initialWindowRange = minInitialWindow...maxWindow

    /// The most streams alive at once (opening, pending and open, half-closed included).
    /// A client's `open()` beyond it throws `.streamLimit`; a server refuses an OPEN beyond it
    /// (the caller sends REJECT with `.streamLimit`; the session continues). At least 1.
    public var maxStreams: Int
    /// This side's receive window per stream, announced in its hello as `initial_window`.
    /// Never more than this many received bytes are buffered unconsumed on one stream.
    /// In `initialWindowRange`.
    public var initialWindow: Int
    /// The most control frames (see `StreamTable.noteControlFrame()`) tolerated in a row
    /// without DATA or MESSAGE progress from the peer; one more throws `.controlFlood`. ≥ 0.
    public var maxControlFrames: Int

    public init(maxStreams: Int = 100, initialWindow: Int = 256 * 1024, maxControlFrames: Int = 200) {
        self.maxStreams = maxStreams
        self.initialWindow = initialWindow
        self.maxControlFrames = maxControlFrames
    }

    /// Whether every field is in range; `StreamTable.init` traps otherwise (a local configuration error).
    public var isValid: Bool {
        maxStreams >= 1 && Self.initialWindowRange.contains(initialWindow) && maxControlFrames >= 0
    }
}
