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

    /// The phase with the data only it has.
    enum Phase: Sendable {
        /// Not resumed yet: what uspd had received and not passed on, handed out by `resume`.
        case resuming(Resume)
        case open
        case closed
    }

    struct Resume: Sendable {
        /// Stream bytes uspd had opened but not delivered.
        var undelivered: [UInt8]
        /// Ciphertext uspd had read from the socket but not opened.
        var unread: [UInt8]
        /// The client had sent FIN before the hand-off.
        var peerFinished: Bool
    }

    var phase: Phase
    /// The transport: record reader and composer and the stream table, from the snapshot.
    var link: SessionLink
    public var state: State {
        switch phase {
        case .resuming: .resuming
        case .open: .open
        case .closed: .closed
        }
    }
    /// uspd's ID of the session, for logs.
    public let serverSessionID: String
    /// This side's id of the stream (what its DATA, WINDOW, FIN and RESET carry).
    public let stream: UInt32

    /// Rebuilds the session from uspd's snapshot. Throws if it does not describe a usable session.
    public init(resuming snapshot: DedicatedStreamSnapshot) throws(USPError) {
        serverSessionID = snapshot.serverSessionID
        stream = snapshot.stream.localID
        phase = .resuming(Resume(undelivered: snapshot.undeliveredData, unread: snapshot.unreadInput,
                                 peerFinished: snapshot.stream.peerFinished))
        link = try SessionLink(resuming: snapshot)
    }

    /// The stream is still open (in at least one direction).
    public var streamIsOpen: Bool { link.streams.contains(stream) }

    /// Starts serving: delivers what uspd had opened but not delivered, the client's FIN if it came
    /// before the hand-off, then handles the input uspd had read but not opened.
    public mutating func resume(into actions: inout Actions) {
        guard case .resuming(let resume) = phase else { preconditionFailure("resume is called once, first") }
        phase = .open
        if !resume.undelivered.isEmpty {
            resume.undelivered.withUnsafeBytes { actions.append(.data([]), carrying: $0) }
        }
        if resume.peerFinished { actions.append(.finished) }
        resume.unread.withUnsafeBytes { receive($0, into: &actions) }
    }

    // MARK: - Input

    public mutating func receive(_ bytes: some Collection<UInt8>, into actions: inout DedicatedStreamSession.Actions) {
        let copy = Array(bytes)
        copy.withUnsafeBytes { receive($0, into: &actions) }
    }

    /// Feeds bytes received from the client.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, into actions: inout DedicatedStreamSession.Actions) {
        guard case .open = phase else {
            if case .resuming = phase { preconditionFailure("resume before receiving") }
            return
        }
        do throws(USPError) {
            try link.withReaderLent { (reader) throws(USPError) in reader.append(bytes) }
            try processRecords(into: &actions)
            try link.flush()
        } catch {
            fail(error, into: &actions)
        }
    }

    /// The client closed its side of the TCP connection.
    public mutating func endOfInput(into actions: inout DedicatedStreamSession.Actions) {
        guard state == .open else { return }
        do throws(USPError) {
            try link.withReaderLent { (reader) throws(USPError) in try reader.checkEndOfInput() }
        } catch { fail(error, into: &actions); return }
        fail(USPError(.unexpectedEOF, "client closed the connection without CLOSE"), into: &actions, sendClose: false)
    }

    private mutating func processRecords(into actions: inout DedicatedStreamSession.Actions) throws(USPError) {
        guard var reader = link.reader.take() else { preconditionFailure("records are processed once at a time") }
        defer { link.reader = reader }
        try actions.lending(&reader) { (reader, actions) throws(USPError) in
            while state == .open {
                let outcome = try reader.nextRecord { (plaintext) throws(USPError) -> Bool in
                    try handleRecord(UnsafeRawBufferPointer(plaintext), into: &actions)
                }
                guard let sawRekey = outcome else { break }
                if sawRekey { try reader.opener.rekey() }
            }
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
                link.streams.noteProgress()
                try handleMessage(kind: kind, json: json)
            case .open(let peerID, let body):
                try handleOpen(peerID: peerID, body: body)
            case .padding, .pong, .accept, .reject, .data, .window, .fin, .reset, .ping, .close, .shape:
                switch try link.applyClientFrame(frame) {
                case .none: break
                case .data(_, let data): actions.append(.data([]), carrying: data)
                case .writable: actions.append(.writable)
                case .finished(_, let closed):
                    actions.append(.finished)
                    if closed { actions.append(.streamClosed(.ok)) }
                case .reset(_, let code): actions.append(.streamClosed(code))
                case .close(let c):
                    phase = .closed
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
            try link.streams.noteControlFrame()
            try link.send(.error(SessionErrorMessage(.unexpectedMessage, "\(message.kind.name) is not served after a relay-free hand-off")))
        case .menu, .serviceReply, .applicationSessionReply, .error:
            throw USPError(.unexpectedMessage, "\(message.kind.name) is a server message; a client may not send it")
        }
    }

    /// Only uspd can validate a token: every OPEN is refused (the ids and limits checked as usual).
    private mutating func handleOpen(peerID: UInt32, body: UnsafeRawBufferPointer) throws(USPError) {
        _ = try ApplicationSessionRequest.decodeOpenBody(body)
        switch try link.streams.peerOpened(peerID) {
        case .refuse(let code):
            try link.send(.reject(opener: peerID, code: code.wireValue, message: code.name))
        case .pending:
            link.streams.reject(peerID)
            try link.streams.noteControlFrame()
            try link.send(.reject(opener: peerID, code: USPError.Code.streamRefused.wireValue,
                                   message: "no new streams after a relay-free hand-off"))
        }
    }

    // MARK: - Application-side calls

    /// Sends application bytes, as much as the client's credit allows; returns the bytes taken.
    public mutating func write(_ data: UnsafeRawBufferPointer) throws(USPError) -> Int {
        guard state == .open else { return 0 }
        return try link.write(stream: stream, data)
    }

    /// The application took `count` bytes: returns credit to the client when due.
    public mutating func consumed(count: Int) throws(USPError) {
        guard state == .open else { return }
        try link.consumed(stream: stream, count: count)
    }

    /// The application finished writing (half-close: FIN).
    public mutating func finish(into actions: inout DedicatedStreamSession.Actions) throws(USPError) {
        guard state == .open else { return }
        // The snapshot may say uspd had already sent this side's FIN: there is nothing more to send.
        if link.streams.state(of: stream)?.localFinished == true { return }
        if try link.finish(stream: stream) { actions.append(.streamClosed(.ok)) }
    }

    /// Aborts the stream with `code`.
    public mutating func reset(code: USPError.Code, into actions: inout DedicatedStreamSession.Actions) throws(USPError) {
        guard state == .open else { return }
        if try link.reset(stream: stream, code: code) { actions.append(.streamClosed(code)) }
    }

    /// Closes the session with `code` (CLOSE; `.ok` once the stream is done).
    public mutating func close(code: USPError.Code = .ok, into actions: inout DedicatedStreamSession.Actions) {
        guard state == .open else { return }
        link.sendClose(code)
        phase = .closed
        actions.append(.closed(code == .ok ? nil : USPError(code, "the application closed the session")))
    }

    /// Hands the bytes to send to `body` and forgets them.
    public mutating func drainOutbound<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { link.drain(body) }

    /// Bytes waiting to be sent.
    public var outboundByteCount: Int { link.outboundByteCount }

    // test hook: seals `plaintext` (frame bytes) as one record, unchecked, as a hostile peer would.
    mutating func _sendRawRecord(_ plaintext: [UInt8]) throws(USPError) { try link.sendRawRecord(plaintext) }

    private mutating func fail(_ error: USPError, into actions: inout DedicatedStreamSession.Actions, sendClose: Bool = true) {
        // The client learns the code only.
        if sendClose { link.sendClose(error.code) }
        phase = .closed
        actions.append(.closed(error))
    }
}
