/// Traffic shaping on a link (docs/PROTOCOL.md §4.1). While a profile is on, records are sealed
/// at `fixed(recordLength)` and kept back: the shell calls `tick()` once per tick, and each tick
/// lets exactly `wireRecordLength` bytes leave, sealing the open record or a cover record when
/// nothing else is waiting. Writes stop taking data once `backlogLimit` bytes wait, and the
/// streams they turned away are told they may write again as ticks drain it.
struct LinkShaping: Sendable {
    var profile: ShapingProfile
    /// The padding in force before shaping began, restored when it ends.
    var previousPadding: PaddingPolicy
    /// Sealed bytes the ticks have let go and the shell has not drained yet.
    var released = 0
    /// Streams a write turned away for lack of room.
    var blocked: [UInt32] = []
}

extension SessionLink {
    var isShaping: Bool { shaping != nil }

    /// Starts (or changes) shaping. `announce` sends the SHAPE frame (the server's side).
    mutating func startShaping(_ profile: ShapingProfile, announce: Bool) throws(USPError) {
        if shaping == nil {
            try composer.flush()
            shaping = LinkShaping(profile: profile, previousPadding: composer.padding, released: composer.sealedByteCount)
        } else {
            shaping!.profile = profile
        }
        composer.setPadding(.fixed(profile.recordLength))
        if announce { try send(.shape(tickMilliseconds: profile.tickMilliseconds, recordLength: UInt16(profile.recordLength))) }
    }

    /// Ends shaping: what waits goes out at once. `announce` sends SHAPE(0, 0) first. Returns the
    /// streams that were waiting for room.
    mutating func stopShaping(announce: Bool) throws(USPError) -> [UInt32] {
        guard let state = shaping else { return [] }
        if announce { try send(.shape(tickMilliseconds: 0, recordLength: 0)) }
        try composer.flush()
        composer.setPadding(state.previousPadding)
        shaping = nil
        return state.blocked
    }

    /// Bytes sealed and not yet let go by a tick.
    private var backlog: Int { composer.sealedByteCount - (shaping?.released ?? 0) }

    /// How many bytes a write on `stream` would take now.
    func sendableBytes(stream: UInt32) -> Int {
        let credit = streams.sendCredit(stream)
        guard let state = shaping else { return credit }
        return min(credit, max(0, state.profile.backlogLimit - backlog - composer.openPlaintextCount))
    }

    /// How much of a write of `count` bytes may be taken now (all of it when not shaping).
    mutating func shapedAllowance(stream: UInt32, count: Int) -> Int {
        guard let state = shaping else { return count }
        let room = max(0, state.profile.backlogLimit - backlog - composer.openPlaintextCount)
        if room < count, !state.blocked.contains(stream) { shaping!.blocked.append(stream) }
        return min(room, count)
    }

    /// One tick: seals the open record, or a cover record, if fewer than one record's bytes are
    /// waiting, and lets one record's worth of bytes go. Returns the streams that may write again.
    mutating func tick() throws(USPError) -> [UInt32] {
        guard let state = shaping else { return [] }
        let chunk = state.profile.wireRecordLength
        if backlog < chunk, composer.hasOpenRecord { try composer.flush() }
        while backlog < chunk { try composer.sealCover() }
        shaping!.released += chunk
        guard !state.blocked.isEmpty, backlog + composer.openPlaintextCount <= state.profile.backlogLimit / 2 else { return [] }
        shaping!.blocked = []
        return state.blocked
    }

    /// Bytes the shell may drain now.
    var releasedByteCount: Int { shaping.map { $0.released } ?? composer.pendingByteCount }
}
