/// A client session once the handshake is done: the transport (`SessionLink`), what the server
/// said (menu, session ID) and the dedicated application stream, with the phase from the reply
/// to the end. `+Requests` holds what the client asks of it.
struct ClientTransport {
    enum Phase {
        /// The initial request is out; waiting for the menu or the application_session reply.
        case awaitingReply
        case established
        case closed
    }

    var phase: Phase = .awaitingReply
    var link: SessionLink
    let handshake: HandshakeResult
    let configuration: SessionConfiguration
    let clientSessionID: String
    /// What message 1 asked for.
    let start: ClientStart

    var serverSessionID: String?
    var menu: ApplicationMenu?
    /// The stream of a dedicated application connection (always 1).
    var applicationStream: UInt32?

    var state: ClientSession.State {
        switch phase {
        case .awaitingReply: .awaitingReply
        case .established: .established
        case .closed: .closed
        }
    }

    init(_ done: ClientHandshaking.Finished, handshakeBytes: [UInt8], start: ClientStart, configuration: SessionConfiguration,
         clientSessionID: String) throws(USPError) {
        handshake = done.result
        self.start = start
        self.configuration = configuration
        self.clientSessionID = clientSessionID
        link = try SessionLink(result: done.result, configuration: configuration, role: .client, unsentHandshake: handshakeBytes)
    }

    /// Right after the handshake: the application stream, the initial request unless message 1
    /// carried it, the handshake reported, then the records that came with message 2.
    mutating func begin(_ done: ClientHandshaking.Finished, earlySent: Bool, now: Timestamp, into actions: inout ClientActions) {
        let accepted = earlySent && done.result.peerHello.flags.contains(.earlyDataAccepted)
        do throws(USPError) {
            try afterHandshake(earlyAccepted: accepted)
        } catch {
            fail(error, into: &actions)
            return
        }
        actions.append(.handshakeCompleted(pattern: done.result.pattern, serverStatic: done.result.remoteStatic ?? [], earlyDataAccepted: accepted))
        if !done.rest.isEmpty {
            done.rest.withUnsafeBytes { receive($0, into: &actions) }
        }
    }

    mutating func receive(_ bytes: UnsafeRawBufferPointer, into actions: inout ClientActions) {
        guard state != .closed else { return }
        do throws(USPError) {
            try link.withReaderLent { (reader) throws(USPError) in reader.append(bytes) }
            try processRecords(into: &actions)
            try link.flush()
        } catch {
            fail(error, into: &actions)
        }
    }

    /// The server closed its side of the TCP connection.
    mutating func endOfInput(into actions: inout ClientActions) {
        guard state != .closed else { return }
        do throws(USPError) {
            try link.withReaderLent { (reader) throws(USPError) in try reader.checkEndOfInput() }
        } catch {
            fail(error, into: &actions)
            return
        }
        fail(USPError(.unexpectedEOF, "server closed the connection without CLOSE"), into: &actions, sendClose: false)
    }

    /// Sets up the application stream and, unless message 1 already carried it, sends the initial request.
    mutating func afterHandshake(earlyAccepted: Bool) throws(USPError) {
        if start.application?.action == .begin {
            let id = try link.streams.open()
            precondition(id == 1, "the dedicated application stream is the first stream")
            applicationStream = id
        }
        let data = start.application?.action == .begin ? start.initialData : []
        if !earlyAccepted {
            let request = try start.initialRequest(sessionID: clientSessionID, binding: handshake.handshakeHash)
            try link.send(.initialRequest(request))
            if !data.isEmpty {
                let sent = try withBytes(data) { (d) throws(USPError) in try link.sendData(localID: 1, d) }
                precondition(sent == data.count, "initial data fits the minimum window")
            }
        } else if !data.isEmpty {
            link.streams.consumeSendCredit(1, data.count)
        }
        try link.flush()
    }

    mutating func processRecords(into actions: inout ClientActions) throws(USPError) {
        guard var reader = link.reader.take() else { preconditionFailure("records are processed once at a time") }
        defer { link.reader = reader }
        try actions.lending(&reader) { (reader, actions) throws(USPError) in
            while state != .closed {
                let outcome = try reader.nextRecord { (plaintext) throws(USPError) -> Bool in
                    try handleRecord(UnsafeRawBufferPointer(plaintext), into: &actions)
                }
                guard let sawRekey = outcome else { break }
                if sawRekey { try reader.opener.rekey() }
            }
        }
    }

    mutating func handleRecord(_ plaintext: UnsafeRawBufferPointer, into actions: inout ClientActions) throws(USPError) -> Bool {
        var frames = FrameReader(plaintext)
        var sawRekey = false
        while state != .closed, let frame = try frames.next() {
            if case .rekey = frame { sawRekey = true; continue }
            try handleFrame(frame, into: &actions)
        }
        return sawRekey
    }

    mutating func handleFrame(_ frame: FrameView, into actions: inout ClientActions) throws(USPError) {
        switch frame {
        case .padding, .rekey, .pong:
            return
        case .message(let kind, let json):
            link.streams.noteProgress()
            var bytes = [kind]
            bytes.append(contentsOf: json)
            let message = try withBytes(bytes) { (b) throws(USPError) in try SessionMessage.decode(b) }
            try handleMessage(message, into: &actions)
        case .open:
            throw USPError(.unexpectedMessage, "OPEN from the server: only the client opens streams")
        case .accept(let localID, let peerID):
            if case .accepted = try link.streams.peerAccepted(localID: localID, peerID: peerID) {
                actions.append(.streamAccepted(stream: localID))
            }
        case .reject(let localID, let code, let message):
            if case .rejected = try link.streams.peerRejected(localID: localID, code: code) {
                actions.append(.streamRejected(stream: localID, code: .fromWire(code), message: String(decoding: message, as: UTF8.self)))
            }
        case .data(let peerID, let data):
            if case .data(let localID, _) = try link.streams.peerData(peerID: peerID, count: data.count) {
                actions.append(.streamData(stream: localID, data: []), carrying: data)
            }
        case .window(let peerID, let increment):
            if case .credit(let localID, let available) = try link.streams.peerWindow(peerID: peerID, increment: increment), available > 0 {
                actions.append(.streamWritable(stream: localID))
            }
        case .fin(let peerID):
            if case .peerFinished(let localID, let closed) = try link.streams.peerFinished(peerID: peerID) {
                actions.append(.streamFinished(stream: localID))
                if closed { actions.append(.streamClosed(stream: localID, code: .ok)) }
            }
        case .reset(let peerID, let code):
            if case .reset(let localID, let code) = try link.streams.peerReset(peerID: peerID, code: code) {
                actions.append(.streamClosed(stream: localID, code: .fromWire(code)))
            }
        case .ping(let value):
            try link.streams.noteControlFrame()
            try link.send(.pong(value))
        case .close(let code, _):
            phase = .closed
            let c = USPError.Code.fromWire(code)
            actions.append(.closed(c == .ok ? nil : USPError(c, "server closed the session: \(c.name)")))
        case .shape(let tick, let length):
            // The server's record size is at most our limit; ours is at most its (never above).
            if tick == 0 {
                for stream in try link.stopShaping(announce: false) { actions.append(.streamWritable(stream: stream)) }
                actions.append(.shaping(nil))
            } else {
                let profile = ShapingProfile(tickMilliseconds: tick, recordLength: min(Int(length), link.composer.sealer.maxPlaintext))
                try link.startShaping(profile, announce: false)
                actions.append(.shaping(profile))
            }
        }
    }

    mutating func handleMessage(_ message: SessionMessage, into actions: inout ClientActions) throws(USPError) {
        switch message {
        case .menu(let m):
            guard state == .awaitingReply || state == .established else {
                throw USPError(.unexpectedMessage, "menu in state \(state)")
            }
            serverSessionID = m.serverSessionID
            menu = m
            phase = .established
            actions.append(.menu(m))
        case .serviceReply(let reply):
            guard state == .established else { throw USPError(.unexpectedMessage, "service_reply before the menu") }
            actions.append(.serviceReply(reply))
        case .applicationSessionReply(let reply):
            guard state == .awaitingReply || state == .established else {
                throw USPError(.unexpectedMessage, "application_session_reply in state \(state)")
            }
            serverSessionID = reply.serverSessionID
            if state == .awaitingReply, let stream = applicationStream {
                switch reply.outcome {
                case .session(let result):
                    guard let server = result.serverTCPStream else {
                        throw USPError(.malformedMessage, "application_session_reply begin without server_tcp_stream")
                    }
                    if case .accepted = try link.streams.peerAccepted(localID: stream, peerID: server) {
                        actions.append(.streamAccepted(stream: stream))
                    }
                case .error(let e):
                    _ = try link.streams.peerRejected(localID: stream, code: e.code.wireValue)
                    actions.append(.streamRejected(stream: stream, code: e.code, message: e.message))
                }
            }
            phase = .established
            actions.append(.applicationSessionReply(reply))
        case .error(let e):
            actions.append(.serverError(e.error))
        case .initialRequest, .serviceRequest:
            throw USPError(.unexpectedMessage, "\(message.kind.name) is a client message; a server may not send it")
        }
    }

    mutating func fail(_ error: USPError, into actions: inout ClientActions, sendClose: Bool = true) {
        if sendClose { link.sendClose(error.code) }
        phase = .closed
        actions.append(.closed(error))
    }

}
