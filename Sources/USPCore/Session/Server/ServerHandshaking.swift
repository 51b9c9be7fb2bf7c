/// The server's handshake phase: message 1 (and in XX, after message 2, message 3) assembled from
/// whatever pieces TCP delivers, then read by the `ResponderHandshake`. Nothing is ever sent on a
/// failure here; message 2 waits in `unsent` until the shell drains it.
struct ServerHandshaking {
    var responder: ResponderHandshake
    /// The bytes of the message being assembled.
    var buffer: [UInt8] = []
    /// XX: message 2 went out; message 3 is next.
    var awaitingMessage3 = false
    /// Message 2, until drained.
    var unsent: [UInt8] = []
    /// Bytes received so far in this phase (for the deadline's log line).
    var received = 0

    /// What a finished handshake hands the transport.
    struct Finished {
        let result: HandshakeResult
        /// Message 1's early frames and the binding their tokens are presented for, when the
        /// policy admitted them (IK/NK with a fresh timestamp); nil otherwise.
        let earlyFrames: [UInt8]?
        let earlyBinding: [UInt8]
        /// An IK/NK message 1 that the policy found fresh (timestamp in the window, ephemeral key
        /// never seen): the client knows the server key and this is not a replay. False for XX.
        let fresh: Bool
        /// Bytes that followed the last handshake message (the first records).
        let rest: [UInt8]
    }

    enum Progress {
        case needMore
        case finished(Finished)
    }

    init(responder: ResponderHandshake) {
        self.responder = responder
    }

    mutating func consume(_ bytes: UnsafeRawBufferPointer, now: Timestamp, configuration: SessionConfiguration,
                          delegate: some ServerSessionDelegate) throws(USPError) -> Progress {
        received += bytes.count
        buffer.append(contentsOf: bytes)
        if !awaitingMessage3 {
            guard buffer.count >= HandshakeLayout.message1Length else { return .needMore }
            let rest = Array(buffer[HandshakeLayout.message1Length...])
            let m1 = try responder.readMessage1(Array(buffer[0..<HandshakeLayout.message1Length]))
            buffer = []
            var flags: Hello.Flags = []
            // Every IK/NK message 1 goes through the replay rule, early frames or not: a fresh one
            // proves the client knows the server key (admission ranks it ahead of strangers).
            let fresh = m1.clientHello.map {
                delegate.admitEarlyData(clientEphemeral: m1.clientEphemeral, timestamp: $0.timestamp, now: now)
            } ?? false
            let early = fresh && m1.earlyFrames.contains(where: { $0 != 0 })
            if early { flags.insert(.earlyDataAccepted) }
            let (m2, result) = try responder.writeMessage2(hello: configuration.hello(now: now, flags: flags))
            unsent += m2
            guard let result else {
                awaitingMessage3 = true
                // What followed message 1 starts message 3 (already counted in `received`).
                received -= rest.count
                return rest.isEmpty ? .needMore : try withBytes(rest) { (r) throws(USPError) in
                    try consume(r, now: now, configuration: configuration, delegate: delegate)
                }
            }
            return .finished(Finished(result: result, earlyFrames: early ? m1.earlyFrames : nil, earlyBinding: m1.earlyBinding, fresh: fresh, rest: rest))
        }
        guard buffer.count >= HandshakeLayout.message3Length else { return .needMore }
        let rest = Array(buffer[HandshakeLayout.message3Length...])
        let result = try responder.readMessage3(Array(buffer[0..<HandshakeLayout.message3Length]))
        buffer = []
        return .finished(Finished(result: result, earlyFrames: nil, earlyBinding: [], fresh: false, rest: rest))
    }

    mutating func drain<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        defer { unsent.removeAll() }
        return unsent.withUnsafeBytes(body)
    }
}
