/// The per-session stream multiplexer state: ids, half-closes, resets and credit-based flow
/// control. Pure data: it neither encodes nor sends; each call says what the caller must send.
///
/// **Ids.** Only the client opens streams. Each side names a stream by its own id; the ids a
/// side allocates are strictly increasing from 1 and never reused in a session. The client
/// allocates in `open()`. The server allocates when it admits an OPEN (`peerOpened`), so its
/// ids increase in OPEN order; if its policy answers out of order, ACCEPT frames may carry them
/// out of order, so the client checks acceptor ids for uniqueness among live streams
/// (`.duplicateStream`), not for order. The server requires the client's OPEN ids to be
/// strictly increasing (`.streamIDNotIncreasing`).
///
/// **Frames from the peer** name the stream by the peer's id (ACCEPT/REJECT: by the opener's,
/// i.e. the client's own id). A peer id above every id the peer has used is `.unknownStream`;
/// a peer id the peer has used whose stream is gone here (closed, reset, rejected, refused) is
/// reported as `.ignored`, because frames sent before the peer saw our RESET race it.
///
/// **Flow control.** Each side announces its per-stream receive window (`initial_window`) in
/// its hello. A sender starts each stream with the peer's initial window as credit (also
/// while opening, before ACCEPT) and gains credit from WINDOW frames, up to 2^31-1
/// (`.windowOverflow`). A receiver starts with its own window as the peer's credit; DATA
/// beyond it is `.flowControl`. Consumed bytes are given back by WINDOW in batches of at least
/// half the window (`consumed`). So one stream that the application never reads stalls only
/// itself, and at most `localInitialWindow` bytes are ever buffered unconsumed per stream.
///
/// **Flood guard.** See `noteControlFrame()`.
///
/// Preconditions trap on misuse that only this side can cause (sending beyond credit,
/// sending after FIN, finishing twice, accepting a stream twice); every peer misbehaviour
/// throws a `USPError` that ends the session, or is reported as a refusal / `.ignored`.
/// Lookups are dictionary hits; receiving DATA or WINDOW allocates nothing.
public struct StreamTable: Sendable {
    public enum Role: Sendable { case client, server }

    public let role: Role
    public let limits: StreamLimits
    /// This side's receive window per stream (`limits.initialWindow`).
    public let localInitialWindow: Int
    /// The peer's announced receive window per stream: our starting send credit.
    public let peerInitialWindow: Int

    /// Live streams by local id.
    private var streams: [UInt32: StreamState] = [:]
    /// Local id by peer id, for live streams whose peer id is known.
    private var localByPeer: [UInt32: UInt32] = [:]

    /// The last id this side allocated (0: none yet).
    public private(set) var lastLocalID: UInt32 = 0
    /// The highest id the peer has used for a stream (its OPEN ids for a server, its ACCEPT
    /// acceptor ids for a client; 0: none yet).
    public private(set) var highestPeerID: UInt32 = 0
    /// OPENs refused for `limits.maxStreams`.
    public private(set) var refusedCount = 0
    /// Control frames since the peer last made progress (see `noteControlFrame()`).
    public private(set) var controlFramesSinceProgress = 0

    /// - Parameters:
    ///   - limits: this side's limits; must be `isValid` (traps otherwise).
    ///   - peerInitialWindow: the `initial_window` from the peer's hello; outside
    ///     `StreamLimits.initialWindowRange` throws `.invalidHello`.
    public init(role: Role, limits: StreamLimits = StreamLimits(), peerInitialWindow: Int) throws(USPError) {
        precondition(limits.isValid, "invalid StreamLimits \(limits)")
        guard StreamLimits.initialWindowRange.contains(peerInitialWindow) else {
            throw USPError(
                .invalidHello,
                "peer initial window \(peerInitialWindow) outside \(StreamLimits.minInitialWindow)...\(StreamLimits.maxWindow)")
        }
        self.role = role
        self.limits = limits
        self.localInitialWindow = limits.initialWindow
        self.peerInitialWindow = peerInitialWindow
    }

    /// Resumes a table that holds one stream, as another process left it (a relay-free hand-off):
    /// the ids this side and the peer used so far, and the control frames counted since progress.
    init(role: Role, limits: StreamLimits, peerInitialWindow: Int, adopting stream: StreamState?,
         lastLocalID: UInt32, highestPeerID: UInt32, controlFramesSinceProgress: Int) throws(USPError) {
        try self.init(role: role, limits: limits, peerInitialWindow: peerInitialWindow)
        self.lastLocalID = lastLocalID
        self.highestPeerID = highestPeerID
        self.controlFramesSinceProgress = controlFramesSinceProgress
        if let stream {
            streams[stream.localID] = stream
            if let peerID = stream.peerID { localByPeer[peerID] = stream.localID }
        }
    }

    // MARK: - Inspection

    /// Live streams (opening, pending, open, half-closed).
    public var count: Int { streams.count }
    public var isEmpty: Bool { streams.isEmpty }

    /// A snapshot of a live stream, or nil if it is not live.
    public func state(of localID: UInt32) -> StreamState? { streams[localID] }

    /// The local id of the live stream the peer calls `peerID`.
    public func localID(forPeer peerID: UInt32) -> UInt32? { localByPeer[peerID] }

    public func contains(_ localID: UInt32) -> Bool { streams[localID] != nil }

    /// True for a stream this side allocated that is gone: closed by FIN both ways, reset by
    /// either side, rejected or refused.
    public func isClosed(_ localID: UInt32) -> Bool {
        localID != 0 && localID <= lastLocalID && streams[localID] == nil
    }

    /// The live streams, in no particular order.
    public var openStreams: OpenStreams { OpenStreams(base: streams.values) }

    public struct OpenStreams: Sequence {
        let base: Dictionary<UInt32, StreamState>.Values
        public func makeIterator() -> Iterator { Iterator(base: base.makeIterator()) }
        public var underestimatedCount: Int { base.count }

        public struct Iterator: IteratorProtocol {
            var base: Dictionary<UInt32, StreamState>.Values.Iterator
            public mutating func next() -> StreamState? { base.next() }
        }
    }

    // MARK: - Opening (client)

    /// Client: allocates a stream in `.opening`; the caller sends OPEN(sender_stream: id) and
    /// may send DATA right after it, up to the peer's initial window. Throws `.streamLimit`
    /// when `limits.maxStreams` streams are live or ids are exhausted. Traps on a server.
    public mutating func open() throws(USPError) -> UInt32 {
        precondition(role == .client, "only the client opens streams")
        guard streams.count < limits.maxStreams else {
            throw USPError(.streamLimit, "open: \(streams.count) streams live, limit \(limits.maxStreams)")
        }
        guard lastLocalID < UInt32.max else { throw USPError(.streamLimit, "open: stream ids exhausted") }
        lastLocalID += 1
        streams[lastLocalID] = StreamState(
            localID: lastLocalID, peerID: nil, phase: .opening,
            sendCredit: peerInitialWindow, receiveCredit: localInitialWindow)
        return lastLocalID
    }

    /// Client: the peer's ACCEPT(opener_stream: localID, acceptor_stream: peerID).
    /// `.unknownStream` for a local id never opened or a stream not in `.opening`;
    /// `.duplicateStream` if `peerID` already names a live stream; `.ignored` if the stream was
    /// reset here before the ACCEPT arrived (the peer's frames for `peerID` are then ignored too).
    public mutating func peerAccepted(localID: UInt32, peerID: UInt32) throws(USPError) -> StreamEvent {
        guard role == .client, localID != 0, localID <= lastLocalID else {
            throw USPError(.unknownStream, "ACCEPT for local stream \(localID), never opened")
        }
        guard peerID != 0 else { throw USPError(.malformedFrame, "ACCEPT with acceptor stream 0") }
        if let other = localByPeer[peerID] {
            throw USPError(.duplicateStream, "ACCEPT names peer stream \(peerID), already local stream \(other)")
        }
        highestPeerID = max(highestPeerID, peerID)
        guard let index = streams.index(forKey: localID) else { return .ignored }
        guard streams.values[index].phase == .opening else {
            throw USPError(.unknownStream, "ACCEPT for local stream \(localID), which is not opening")
        }
        streams.values[index].phase = .open
        streams.values[index].peerID = peerID
        localByPeer[peerID] = localID
        return .accepted(localID: localID, peerID: peerID)
    }

    /// Client: the peer's REJECT(opener_stream: localID, code). The stream is removed.
    /// `.unknownStream` for a local id never opened or a stream already accepted; `.ignored`
    /// if it was reset here first.
    public mutating func peerRejected(localID: UInt32, code: UInt16) throws(USPError) -> StreamEvent {
        guard role == .client, localID != 0, localID <= lastLocalID else {
            throw USPError(.unknownStream, "REJECT for local stream \(localID), never opened")
        }
        guard let index = streams.index(forKey: localID) else { return .ignored }
        guard streams.values[index].phase == .opening else {
            throw USPError(.unknownStream, "REJECT for local stream \(localID), which is not opening")
        }
        streams.remove(at: index)
        return .rejected(localID: localID, code: code)
    }

    // MARK: - Opening (server)

    /// Server: the peer's OPEN(sender_stream: peerID). Throws `.streamIDNotIncreasing` if
    /// `peerID` is not above every id the peer used before, `.unexpectedMessage` on a client
    /// (only the client opens). With `limits.maxStreams` streams live, refuses (counted in
    /// `refusedCount` and as a control frame, which may throw `.controlFlood`): the caller
    /// sends REJECT with the code. Otherwise the stream is created `.pending`; DATA and FIN
    /// from the peer are already accepted on it; the caller calls `accept` or `reject`.
    public mutating func peerOpened(_ peerID: UInt32) throws(USPError) -> StreamOpenDecision {
        guard role == .server else {
            throw USPError(.unexpectedMessage, "OPEN for peer stream \(peerID): only the client opens streams")
        }
        guard peerID > highestPeerID else {
            throw USPError(.streamIDNotIncreasing, "OPEN for peer stream \(peerID) after \(highestPeerID)")
        }
        highestPeerID = peerID
        guard streams.count < limits.maxStreams, lastLocalID < UInt32.max else {
            refusedCount += 1
            try noteControlFrame()
            return .refuse(.streamLimit)
        }
        lastLocalID += 1
        streams[lastLocalID] = StreamState(
            localID: lastLocalID, peerID: peerID, phase: .pending,
            sendCredit: peerInitialWindow, receiveCredit: localInitialWindow)
        localByPeer[peerID] = lastLocalID
        return .pending(localID: lastLocalID)
    }

    /// Server: accepts a pending stream and returns its local id; the caller sends
    /// ACCEPT(opener_stream: peerID, acceptor_stream: localID), after which it may send DATA.
    /// Returns nil if the peer reset the stream while the decision was pending (send nothing).
    /// Traps for an id the peer never opened or a stream already accepted.
    public mutating func accept(_ peerID: UInt32) -> UInt32? {
        precondition(role == .server, "only the server accepts streams")
        guard let localID = localByPeer[peerID], let index = streams.index(forKey: localID) else {
            precondition(peerID != 0 && peerID <= highestPeerID, "accept: peer stream \(peerID) was never opened")
            return nil
        }
        precondition(streams.values[index].phase == .pending, "accept: peer stream \(peerID) is not pending")
        streams.values[index].phase = .open
        return localID
    }

    /// Server: rejects a pending stream and removes it; the caller sends REJECT. Returns false
    /// if the peer reset it meanwhile (send nothing). Traps for an id never opened or a stream
    /// already accepted (use `reset`). Policy refusals are not counted as control frames here;
    /// call `noteControlFrame()` for them if they should be.
    @discardableResult
    public mutating func reject(_ peerID: UInt32) -> Bool {
        precondition(role == .server, "only the server rejects streams")
        guard let localID = localByPeer[peerID], let index = streams.index(forKey: localID) else {
            precondition(peerID != 0 && peerID <= highestPeerID, "reject: peer stream \(peerID) was never opened")
            return false
        }
        precondition(streams.values[index].phase == .pending, "reject: peer stream \(peerID) is not pending")
        remove(at: index)
        return true
    }

    // MARK: - Sending

    /// What this side may send on `localID` now: 0 if the stream is gone, pending or finished.
    public func sendCredit(_ localID: UInt32) -> Int {
        guard let s = streams[localID], s.phase != .pending, !s.localFinished else { return 0 }
        return s.sendCredit
    }

    /// Records that `n` bytes of DATA are being sent on `localID`. Traps unless the stream is
    /// live, not pending, not finished, and `1 ≤ n ≤ sendCredit(localID)`.
    public mutating func consumeSendCredit(_ localID: UInt32, _ n: Int) {
        guard let index = streams.index(forKey: localID) else {
            preconditionFailure("send on local stream \(localID), which is not live")
        }
        let s = streams.values[index]
        precondition(s.phase != .pending, "send on pending stream \(localID) before accept")
        precondition(!s.localFinished, "send on local stream \(localID) after FIN")
        precondition(n >= 1 && n <= s.sendCredit, "send of \(n) bytes on local stream \(localID) with credit \(s.sendCredit)")
        streams.values[index].sendCredit = s.sendCredit - n
    }

    /// This side half-closes `localID`; returns true if the caller should send FIN, false if
    /// the stream is already gone (reset or closed: send nothing). If the peer had already
    /// finished, the stream is now closed and removed (`isClosed`). Traps for an id never
    /// allocated, a pending stream (use `reject`), or a second FIN.
    @discardableResult
    public mutating func finish(_ localID: UInt32) -> Bool {
        guard let index = streams.index(forKey: localID) else {
            precondition(localID != 0 && localID <= lastLocalID, "finish: local stream \(localID) was never opened")
            return false
        }
        let s = streams.values[index]
        precondition(s.phase != .pending, "finish: stream \(localID) is pending; accept or reject it")
        precondition(!s.localFinished, "finish: local stream \(localID) already finished")
        if s.peerFinished {
            remove(at: index)
        } else {
            streams.values[index].localFinished = true
        }
        return true
    }

    /// This side aborts `localID` in both directions and removes it; returns true if the caller
    /// should send RESET, false if it was already gone. Later DATA/WINDOW/FIN from the peer for
    /// it are `.ignored`. Traps for an id never allocated or a pending stream (use `reject`).
    @discardableResult
    public mutating func reset(_ localID: UInt32) -> Bool {
        guard let index = streams.index(forKey: localID) else {
            precondition(localID != 0 && localID <= lastLocalID, "reset: local stream \(localID) was never opened")
            return false
        }
        precondition(streams.values[index].phase != .pending, "reset: stream \(localID) is pending; reject it")
        remove(at: index)
        return true
    }

    // MARK: - Receiving

    /// The peer's DATA(sender_stream: peerID) of `count` bytes. `.data` to deliver, or
    /// `.ignored`. Throws `.unknownStream` (id never used by the peer), `.streamClosed` (after
    /// the peer's FIN), `.flowControl` (beyond the credit the peer was given).
    public mutating func peerData(peerID: UInt32, count: Int) throws(USPError) -> StreamEvent {
        guard count >= 1 else { throw USPError(.malformedFrame, "DATA on peer stream \(peerID) with no bytes") }
        guard let index = try liveIndex(peer: peerID, .data) else { return .ignored }
        let s = streams.values[index]
        guard !s.peerFinished else {
            throw USPError(.streamClosed, "DATA on peer stream \(peerID) after its FIN")
        }
        guard count <= s.receiveCredit else {
            throw USPError(.flowControl, "DATA of \(count) bytes on peer stream \(peerID) with \(s.receiveCredit) bytes of credit")
        }
        streams.values[index].receiveCredit = s.receiveCredit - count
        streams.values[index].buffered = s.buffered + count
        controlFramesSinceProgress = 0
        return .data(localID: s.localID, count: count)
    }

    /// The application read `n` bytes of `localID`. Returns a WINDOW increment to send
    /// (WINDOW(sender_stream: localID, increment)) once the consumed-but-unannounced bytes
    /// reach half the local window, else nil. Also nil once the peer has finished (it sends no
    /// more) or if the stream is gone. Traps if `n` exceeds the buffered bytes, or on a pending
    /// stream (the application reads a stream only after `accept`).
    public mutating func consumed(_ localID: UInt32, _ n: Int) -> UInt32? {
        guard let index = streams.index(forKey: localID) else { return nil }
        let s = streams.values[index]
        precondition(s.phase != .pending, "consumed on pending stream \(localID) before accept")
        precondition(n >= 0 && n <= s.buffered, "consumed \(n) bytes of local stream \(localID) holding \(s.buffered)")
        streams.values[index].buffered = s.buffered - n
        let unannounced = s.unannounced + n
        guard !s.peerFinished, unannounced > 0, unannounced >= localInitialWindow / 2 else {
            streams.values[index].unannounced = unannounced
            return nil
        }
        streams.values[index].unannounced = 0
        streams.values[index].receiveCredit = s.receiveCredit + unannounced
        return UInt32(unannounced)
    }

    /// The peer's WINDOW(sender_stream: peerID, increment): adds send credit. Throws
    /// `.malformedFrame` (increment 0), `.windowOverflow` (credit above 2^31-1),
    /// `.unknownStream`; `.ignored` for a stream gone here.
    public mutating func peerWindow(peerID: UInt32, increment: UInt32) throws(USPError) -> StreamEvent {
        guard increment >= 1 else { throw USPError(.malformedFrame, "WINDOW on peer stream \(peerID) with increment 0") }
        guard let index = try liveIndex(peer: peerID, .window) else { return .ignored }
        let s = streams.values[index]
        let credit = s.sendCredit + Int(increment)
        guard credit <= StreamLimits.maxWindow else {
            throw USPError(.windowOverflow, "WINDOW of \(increment) on peer stream \(peerID) raises credit \(s.sendCredit) past 2^31-1")
        }
        streams.values[index].sendCredit = credit
        return .credit(localID: s.localID, available: s.localFinished ? 0 : credit)
    }

    /// The peer's FIN(sender_stream: peerID). Throws `.streamClosed` on a second FIN,
    /// `.unknownStream`; `.ignored` for a stream gone here. Closes and removes the stream if
    /// this side had finished too.
    public mutating func peerFinished(peerID: UInt32) throws(USPError) -> StreamEvent {
        guard let index = try liveIndex(peer: peerID, .fin) else { return .ignored }
        let s = streams.values[index]
        guard !s.peerFinished else { throw USPError(.streamClosed, "second FIN on peer stream \(peerID)") }
        if s.localFinished {
            remove(at: index)
            return .peerFinished(localID: s.localID, closed: true)
        }
        streams.values[index].peerFinished = true
        return .peerFinished(localID: s.localID, closed: false)
    }

    /// The peer's RESET(sender_stream: peerID, code): removes the stream. Counts as a control
    /// frame (may throw `.controlFlood`), also when ignored. Throws `.unknownStream`.
    public mutating func peerReset(peerID: UInt32, code: UInt16) throws(USPError) -> StreamEvent {
        let index = try liveIndex(peer: peerID, .reset)
        try noteControlFrame()
        guard let index else { return .ignored }
        let localID = streams.values[index].localID
        remove(at: index)
        return .reset(localID: localID, code: code)
    }

    // MARK: - Flood guard

    /// Counts one control frame from the peer that costs this side work without moving
    /// application data. The rule: the table counts control frames since the peer's last
    /// progress, and throws `.controlFlood` when the count exceeds `limits.maxControlFrames`.
    ///
    /// - Counted by the table itself: OPENs refused for the stream limit (`peerOpened`) and
    ///   RESETs (`peerReset`, ignored ones included).
    /// - Counted by the caller through this method: PINGs (each needs a PONG), OPENs its policy
    ///   rejects, and anything else it wants to bound.
    /// - Progress resets the count to 0: a DATA frame accepted by `peerData`, or a MESSAGE the
    ///   caller reports through `noteProgress()`.
    ///
    /// So a peer gets at most `maxControlFrames` such frames per DATA or MESSAGE it sends.
    public mutating func noteControlFrame() throws(USPError) {
        controlFramesSinceProgress += 1
        guard controlFramesSinceProgress <= limits.maxControlFrames else {
            throw USPError(
                .controlFlood,
                "\(controlFramesSinceProgress) control frames without DATA or MESSAGE, limit \(limits.maxControlFrames)")
        }
    }

    /// The peer made progress (the caller received a MESSAGE); resets the control-frame count.
    public mutating func noteProgress() { controlFramesSinceProgress = 0 }

    // MARK: - Private

    /// The index of the live stream the peer calls `peerID`; nil if the peer used that id
    /// before but the stream is gone here; throws `.unknownStream` for an id the peer never used.
    private func liveIndex(peer peerID: UInt32, _ type: FrameType) throws(USPError) -> Dictionary<UInt32, StreamState>.Index? {
        if let localID = localByPeer[peerID], let index = streams.index(forKey: localID) { return index }
        guard peerID != 0, peerID <= highestPeerID else {
            throw USPError(.unknownStream, "\(type.name) on peer stream \(peerID), which the peer never opened")
        }
        return nil
    }

    private mutating func remove(at index: Dictionary<UInt32, StreamState>.Index) {
        let removed = streams.remove(at: index)
        if let peerID = removed.value.peerID { localByPeer[peerID] = nil }
    }
}
