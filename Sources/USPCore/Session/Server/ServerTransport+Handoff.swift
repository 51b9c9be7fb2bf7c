/// The relay-free hand-off of a dedicated connection (docs/PROTOCOL.md §14).
extension ServerTransport {


    /// See `ServerSession.beginHandoff`: the snapshot, and the phase `handingOff` until the outcome.
    mutating func beginHandoff(undeliveredData: [UInt8], unreadInput: [UInt8], unwrittenOutput: [UInt8]) throws(USPError) -> DedicatedStreamSnapshot {
        guard state == .established else {
            throw USPError(.internalError, "the session is not established (\(state))")
        }
        guard !link.isShaping else {
            throw USPError(.internalError, "the session is shaped: its records keep their ticks, so uspd relays it")
        }
        guard let stream = dedicatedStream else {
            throw USPError(.internalError, "not a dedicated connection: the stream was opened with OPEN on a menu connection")
        }
        guard link.streams.lastLocalID == stream, link.streams.count == 1, let live = link.streams.state(of: stream) else {
            throw USPError(.internalError, "the connection has had other streams than its dedicated one, or that stream is gone")
        }
        guard live.buffered == undeliveredData.count else {
            throw USPError(.internalError, "the shell holds \(undeliveredData.count) undelivered bytes, the stream \(live.buffered)")
        }
        let pending = link.drain { Array($0) }
        let snapshot: DedicatedStreamSnapshot
        do throws(USPError) {
            snapshot = try link.snapshot(stream: stream, serverSessionID: serverSessionID, undeliveredData: undeliveredData,
                                         unreadInput: unreadInput, unwrittenOutput: unwrittenOutput + pending)
        } catch {
            // Nothing changes: what was drained goes out as before.
            if !pending.isEmpty { link.composer.requeue(pending) }
            throw error
        }
        phase = .handingOff(requeue: pending)
        return snapshot
    }

    /// The hand-off did not happen: the session goes on where it stopped (what was pending to send
    /// is queued again).
    mutating func handoffFailed() {
        guard case .handingOff(let requeue) = phase else { preconditionFailure("fail only a hand-off under way") }
        phase = .established
        if !requeue.isEmpty { link.composer.requeue(requeue) }
    }
}
