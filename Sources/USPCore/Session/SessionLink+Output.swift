/// What every session role does with its link the same way: drain the outbound bytes (any
/// handshake message still pending first), and the application side's calls on a stream.
extension SessionLink {
    /// Hands the unsent handshake message and then the sealed records to `body` in one buffer, and
    /// forgets them; with no handshake message pending, straight from the composer's own storage.
    /// While shaping, only what the ticks let go leaves.
    mutating func drain<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let released = shaping?.released {
            shaping!.released = 0
            guard !unsentHandshake.isEmpty else { return composer.drainSealedPrefix(released, body) }
            var all = unsentHandshake
            unsentHandshake = []
            composer.drainSealedPrefix(released) { all.append(contentsOf: $0) }
            return all.withUnsafeBytes(body)
        }
        guard !unsentHandshake.isEmpty else { return composer.drain(body) }
        var all = unsentHandshake
        unsentHandshake = []
        composer.drain { all.append(contentsOf: $0) }
        return all.withUnsafeBytes(body)
    }

    // MARK: - The application side's calls, shared by the session roles

    /// Sends up to the peer's credit; returns the bytes taken.
    mutating func write(stream: UInt32, _ data: UnsafeRawBufferPointer) throws(USPError) -> Int {
        let allowed = shapedAllowance(stream: stream, count: data.count)
        let n = try sendData(localID: stream, UnsafeRawBufferPointer(rebasing: data[0..<allowed]))
        try flush()
        return n
    }

    /// Sends what `fill` writes straight into the records being composed, up to the peer's credit:
    /// `fill` is called with room for one DATA frame at a time and returns how many bytes it wrote;
    /// a short fill (the source has no more now) ends the call. Returns the bytes taken; 0 with
    /// `fill` never called when there is no credit.
    mutating func write(stream: UInt32, upTo limit: Int, fill: (UnsafeMutableRawBufferPointer) -> Int) throws(USPError) -> Int {
        let allowed = shapedAllowance(stream: stream, count: limit)
        let n = try sendData(localID: stream, upTo: allowed, fill: fill)
        try flush()
        return n
    }

    /// Returns credit to the peer once due.
    mutating func consumed(stream: UInt32, count: Int) throws(USPError) {
        guard let increment = streams.consumed(stream, count) else { return }
        try send(.window(stream: stream, increment: increment))
        try flush()
    }

    /// Half-closes; returns true when the stream is now fully closed (the peer had finished too).
    mutating func finish(stream: UInt32) throws(USPError) -> Bool {
        let wasLive = streams.contains(stream)
        if streams.finish(stream) {
            try send(.fin(stream: stream))
            try flush()
        }
        return wasLive && !streams.contains(stream)
    }

    /// Aborts; returns true if the stream was live.
    mutating func reset(stream: UInt32, code: USPError.Code) throws(USPError) -> Bool {
        guard streams.reset(stream) else { return false }
        try send(.reset(stream: stream, code: code.wireValue))
        try flush()
        return true
    }

    /// Best effort CLOSE (the session is ending whatever happens).
    mutating func sendClose(_ code: USPError.Code) {
        try? send(.close(code: code.wireValue, reason: code.name))
        // A closing session does not wait for ticks.
        _ = try? stopShaping(announce: false)
        try? flush()
    }

    // test hook: seals `plaintext` (frame bytes) as one record, unchecked, as a hostile peer would.
    mutating func sendRawRecord(_ plaintext: [UInt8]) throws(USPError) {
        try composer.reserve(plaintext.count)
        composer.withWriter { $0.writeBytes(plaintext) }
        try flush()
    }

    /// Lends the record reader to `body` while `self` stays free for the frames it dispatches.
    mutating func withReaderLent<R>(_ body: (inout RecordReader) throws(USPError) -> R) throws(USPError) -> R {
        guard var lent = reader.take() else { preconditionFailure("the reader is lent to one caller at a time") }
        defer { reader = lent }
        return try body(&lent)
    }
}
