/// What both session roles send the same way: handshake bytes first, then sealed records; and the
/// application-side stream calls, which differ between roles only in the events they report.
struct SessionOutput: Sendable {
    /// Handshake messages not yet drained (they precede any record).
    var handshakeBytes: [UInt8] = []
    var link: SessionLink?

    var byteCount: Int { handshakeBytes.count + (link?.composer.pendingByteCount ?? 0) }

    mutating func drain<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        if link == nil || !handshakeBytes.isEmpty {
            var all = handshakeBytes
            handshakeBytes = []
            if link != nil { link!.composer.drain { all.append(contentsOf: $0) } }
            return all.withUnsafeBytes(body)
        }
        return link!.composer.drain(body)
    }

    mutating func releaseIdleStorage() {
        guard byteCount == 0 else { return }
        handshakeBytes = []
        link?.releaseIdleStorage()
    }

    /// Sends up to the peer's credit; returns the bytes taken.
    mutating func write(stream: UInt32, _ data: UnsafeRawBufferPointer) throws(USPError) -> Int {
        guard link != nil else { return 0 }
        let n = try link!.sendData(localID: stream, data)
        try link!.flush()
        return n
    }

    /// Returns credit to the peer once due.
    mutating func consumed(stream: UInt32, count: Int) throws(USPError) {
        guard let increment = link?.streams.consumed(stream, count) else { return }
        try link!.send(.window(stream: stream, increment: increment))
        try link!.flush()
    }

    /// Half-closes; returns true when the stream is now fully closed (the peer had finished too).
    mutating func finish(stream: UInt32) throws(USPError) -> Bool {
        guard link != nil else { return false }
        let wasLive = link!.streams.contains(stream)
        if link!.streams.finish(stream) {
            try link!.send(.fin(stream: stream))
            try link!.flush()
        }
        return wasLive && !link!.streams.contains(stream)
    }

    /// Aborts; returns true if the stream was live.
    mutating func reset(stream: UInt32, code: USPError.Code) throws(USPError) -> Bool {
        guard link != nil, link!.streams.reset(stream) else { return false }
        try link!.send(.reset(stream: stream, code: code.wireValue))
        try link!.flush()
        return true
    }

    /// Best effort CLOSE (the session is ending whatever happens).
    mutating func sendClose(_ code: USPError.Code) {
        guard link != nil else { return }
        try? link!.send(.close(code: code.wireValue, reason: code.name))
        try? link!.flush()
    }

    // test hook: seals `plaintext` (frame bytes) as one record, unchecked, as a hostile peer would.
    mutating func sendRawRecord(_ plaintext: [UInt8]) throws(USPError) {
        try link!.composer.reserve(plaintext.count)
        link!.composer.withWriter { $0.writeBytes(plaintext) }
        try link!.flush()
    }
}
