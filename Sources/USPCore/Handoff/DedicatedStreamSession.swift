/// The server side of a dedicated connection after a relay-free hand-off, sans I/O: the application
/// resumes from the `DedicatedStreamSnapshot` uspd sent and serves the one stream itself, over the
/// client's TCP connection (docs/PROTOCOL.md §14).
///
/// ```
///  init(resuming:) ──resume──▶ open ──error, CLOSE (either side), end of input──▶ closed
/// ```
///
/// Bytes in, events and sealed records out, with `ServerSession`'s rules for an established
/// session (the same `SessionLink`, `RecordReader`, `RecordComposer`, `StreamTable` and
/// `FrameReader`): the record errors (tampered, replayed, reordered, truncated, too large, rekey
/// overdue), REKEY both ways, WINDOW credit, FIN both ways, RESET, PING/PONG, the control-frame
/// flood guard, and CLOSE with a code. What only uspd can decide is refused with a specific code:
/// an OPEN gets REJECT `stream_refused`, a client session message (`initial_request`,
/// `service_request`) is answered with an `error` message `unexpected_message`; the session goes on.
/// A server-only message or a frame only a server sends ends the session, as in `ServerSession`.
public struct DedicatedStreamSession: Sendable {
    public enum State: Equatable, Sendable {
        /// Created from the snapshot; `resume` has not run yet.
        case resuming
        /// Serving the stream (also after it closed, until CLOSE).
        case open
        /// Over. Further input is ignored.
        case closed
    }

    /// What the session asks of its I/O shell (appended to an `Actions` buffer).
    public enum Action: SessionAction {
        /// Bytes from the client. Call `consumed(count:)` once the application took them.
        case data(ArraySlice<UInt8>)
        /// The client half-closed the stream.
        case finished
        /// The client granted credit: `write` can send more.
        case writable
        /// The stream is gone: both sides finished (`.ok`) or it was reset with the code.
        case streamClosed(USPError.Code)
        /// The session is over: nil for a clean CLOSE, else the reason. Drain, then close the socket.
        case closed(USPError?)

        public func attaching(_ data: ArraySlice<UInt8>) -> Action {
            if case .data = self { return .data(data) }
            return self
        }
    }

    /// The session's actions buffer.
    public typealias Actions = SessionActions<Action>

    public private(set) var state: State = .resuming
    /// uspd's ID of the session, for logs.
    public let serverSessionID: String
    /// This side's id of the stream (what its DATA, WINDOW, FIN and RESET carry).
    public let stream: UInt32
    private var output = SessionOutput()
    private var link: SessionLink? {
        get { output.link }
        _modify { yield &output.link }
        set { output.link = newValue }
    }
    private var undelivered: [UInt8]
    private var unread: [UInt8]
    private var peerFinishedBeforeHandoff: Bool

    /// Takes over from `snapshot` (the caller zeroes its copy). Throws `malformed_message` if the
    /// snapshot's parts do not fit together.
    public init(resuming snapshot: DedicatedStreamSnapshot) throws(USPError) {
        serverSessionID = snapshot.serverSessionID
        stream = snapshot.stream.localID
        undelivered = snapshot.undeliveredData
        unread = snapshot.unreadInput
        peerFinishedBeforeHandoff = snapshot.stream.peerFinished
        output.link = try SessionLink(resuming: snapshot)
    }

    /// Whether the stream is still live (not closed by FIN both ways or a reset).
    public var streamIsOpen: Bool { link?.streams.contains(stream) ?? false }

    /// Starts serving: reports the application bytes uspd had already opened (and the client's FIN
    /// if it came before the hand-off), then processes the input uspd had read but not opened.
    /// Records uspd had sealed but not written are the first outbound bytes.
    public mutating func resume(into actions: inout DedicatedStreamSession.Actions) {
        precondition(state == .resuming, "resume is called once")
        state = .open
        if !undelivered.isEmpty {
            undelivered.withUnsafeBytes { actions.append(.data([]), carrying: $0) }
            undelivered = []
        }
        if peerFinishedBeforeHandoff { actions.append(.finished) }
        let input = unread
        unread = []
        input.withUnsafeBytes { receive($0, into: &actions) }
    }

    // MARK: - Input

    public mutating func receive(_ bytes: some Collection<UInt8>, into actions: inout DedicatedStreamSession.Actions) {
        let copy = Array(bytes)
        copy.withUnsafeBytes { receive($0, into: &actions) }
    }

    /// Feeds bytes received from the client.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, into actions: inout DedicatedStreamSession.Actions) {
        precondition(state != .resuming, "resume before receiving")
        guard state == .open else { return }
        do throws(USPError) {
            link!.reader!.append(bytes)
            try processRecords(into: &actions)
            try link?.flush()
        } catch {
            fail(error, into: &actions)
        }
    }

    /// The client closed its side of the TCP connection.
    public mutating func endOfInput(into actions: inout DedicatedStreamSession.Actions) {
        guard state == .open else { return }
        if let reader = link?.reader {
            do throws(USPError) { try reader.checkEndOfInput() } catch { fail(error, into: &actions); return }
        }
        fail(USPError(.unexpectedEOF, "client closed the connection without CLOSE"), into: &actions, sendClose: false)
    }

    private mutating func processRecords(into actions: inout DedicatedStreamSession.Actions) throws(USPError) {
        var reader = link!.reader.take()!
        defer { link?.reader = reader }
        while state == .open {
            let outcome = try reader.nextRecord { (plaintext) throws(USPError) -> Bool in
                try handleRecord(UnsafeRawBufferPointer(plaintext), into: &actions)
            }
            guard let sawRekey = outcome else { break }
            if sawRekey { try reader.opener.rekey() }
        }
    }

    /// Dispatches every frame of one record's plaintext. Returns true if it carried REKEY.
    private mutating func handleRecord(_ plaintext: UnsafeRawBufferPointer, into actions: inout DedicatedStreamSession.Actions) throws(USPError) -> Bool {
        var frames = FrameReader(plaintext)
        var sawRekey = false
        while state == .open, let frame = try frames.next() {
            switch frame {
            case .rekey:
                sawRekey = true
            case .message(let kind, let json):
                link!.streams.noteProgress()
                try handleMessage(kind: kind, json: json)
            case .open(let peerID, let body):
                try handleOpen(peerID: peerID, body: body)
            case .padding, .pong, .accept, .reject, .data, .window, .fin, .reset, .ping, .close:
                switch try link!.applyClientFrame(frame) {
                case .none: break
                case .data(_, let data): actions.append(.data([]), carrying: data)
                case .writable: actions.append(.writable)
                case .finished(_, let closed):
                    actions.append(.finished)
                    if closed { actions.append(.streamClosed(.ok)) }
                case .reset(_, let code): actions.append(.streamClosed(code))
                case .close(let c):
                    state = .closed
                    actions.append(.closed(c == .ok ? nil : USPError(.closedByPeer, "client closed the session with \(c.name)")))
                }
            }
        }
        return sawRekey
    }

    /// Session messages need uspd's policy, which is not here: client messages get an `error`
    /// answer, server messages end the session as they do in `ServerSession`.
    private mutating func handleMessage(kind: UInt8, json: UnsafeRawBufferPointer) throws(USPError) {
        var bytes = [kind]
        bytes.append(contentsOf: json)
        let message = try withBytes(bytes) { (b) throws(USPError) in try SessionMessage.decode(b) }
        switch message {
        case .initialRequest, .serviceRequest:
            try link!.streams.noteControlFrame()
            try link!.send(.error(SessionErrorMessage(.unexpectedMessage, "\(message.kind.name) is not served after a relay-free hand-off")))
        case .menu, .serviceReply, .applicationSessionReply, .error:
            throw USPError(.unexpectedMessage, "\(message.kind.name) is a server message; a client may not send it")
        }
    }

    /// Only uspd can validate a token: every OPEN is refused (the ids and limits checked as usual).
    private mutating func handleOpen(peerID: UInt32, body: UnsafeRawBufferPointer) throws(USPError) {
        _ = try ApplicationSessionRequest.decodeOpenBody(body)
        switch try link!.streams.peerOpened(peerID) {
        case .refuse(let code):
            try link!.send(.reject(opener: peerID, code: code.wireValue, message: code.name))
        case .pending:
            link!.streams.reject(peerID)
            try link!.streams.noteControlFrame()
            try link!.send(.reject(opener: peerID, code: USPError.Code.streamRefused.wireValue,
                                   message: "no new streams after a relay-free hand-off"))
        }
    }

    // MARK: - Application-side calls

    /// Sends application bytes, as much as the client's credit allows; returns the bytes taken.
    public mutating func write(_ data: UnsafeRawBufferPointer) throws(USPError) -> Int {
        guard state == .open else { return 0 }
        return try output.write(stream: stream, data)
    }

    /// The application took `count` bytes: returns credit to the client when due.
    public mutating func consumed(count: Int) throws(USPError) {
        guard state == .open else { return }
        try output.consumed(stream: stream, count: count)
    }

    /// The application finished writing (half-close: FIN).
    public mutating func finish(into actions: inout DedicatedStreamSession.Actions) throws(USPError) {
        guard state == .open else { return }
        if try output.finish(stream: stream) { actions.append(.streamClosed(.ok)) }
    }

    /// Aborts the stream with `code`.
    public mutating func reset(code: USPError.Code, into actions: inout DedicatedStreamSession.Actions) throws(USPError) {
        guard state == .open else { return }
        if try output.reset(stream: stream, code: code) { actions.append(.streamClosed(code)) }
    }

    /// Closes the session with `code` (CLOSE; `.ok` once the stream is done).
    public mutating func close(code: USPError.Code = .ok, into actions: inout DedicatedStreamSession.Actions) {
        guard state == .open else { return }
        output.sendClose(code)
        state = .closed
        actions.append(.closed(code == .ok ? nil : USPError(code, "the application closed the session")))
    }

    /// Hands the bytes to send to `body` and forgets them.
    public mutating func drainOutbound<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { output.drain(body) }

    /// Bytes waiting to be sent.
    public var outboundByteCount: Int { output.byteCount }

    // test hook: seals `plaintext` (frame bytes) as one record, unchecked, as a hostile peer would.
    mutating func _sendRawRecord(_ plaintext: [UInt8]) throws(USPError) { try output.sendRawRecord(plaintext) }

    private mutating func fail(_ error: USPError, into actions: inout DedicatedStreamSession.Actions, sendClose: Bool = true) {
        // The client learns the code only.
        if sendClose { output.sendClose(error.code) }
        state = .closed
        actions.append(.closed(error))
    }
}
