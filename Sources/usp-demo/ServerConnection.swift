import USPCore

/// One accepted TCP connection on the demo server: reads bytes into a `ServerSession`, runs the
/// demo applications on the streams it opens, and writes what the session has to send. Runs on
/// its own thread until the session closes.
struct ServerConnection {
    /// An application's stream: output not yet taken by the session, and a pending half-close.
    private struct Stream {
        let application: any DemoApplication
        var unsent: [UInt8] = []
        var finishWhenSent = false
        var finished = false
    }

    /// Seconds the client gets to finish the handshake, then to say anything at all.
    static let handshakeDeadline = 5
    static let idleTimeout = 10

    private var session: ServerSession
    private let socket: TCPSocket
    private let policy: DemoPolicy
    private var streams: [UInt32: Stream] = [:]

    init(socket: TCPSocket, staticKey: KeyPair, policy: DemoPolicy) {
        self.socket = socket
        self.policy = policy
        session = ServerSession(staticKey: staticKey, peerAddress: socket.peerAddress)
    }

    mutating func run() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var actions = ServerActions()
        socket.setReadTimeout(Self.handshakeDeadline)
        while session.state != .closed {
            actions.removeAll()
            do {
                let n = try socket.read(into: &buffer)
                if n == 0 {
                    session.endOfInput(into: &actions)
                } else {
                    buffer.withUnsafeBytes { bytes in
                        session.receive(UnsafeRawBufferPointer(rebasing: bytes[0..<n]), now: .now(), delegate: policy, into: &actions)
                    }
                }
            } catch {
                // Timed out (or the socket failed): silence before the handshake, CLOSE after it.
                if session.state == .awaitingMessage1 || session.state == .awaitingMessage3 {
                    session.handshakeDeadlinePassed(into: &actions)
                } else {
                    session.close(code: .idleTimeout, into: &actions)
                }
            }
            if session.state == .established { socket.setReadTimeout(Self.idleTimeout) }
            do {
                try handle(actions)
            } catch {
                var ignored = ServerActions()
                session.close(code: (error as? USPError)?.code ?? .internalError, into: &ignored)
            }
            guard flush() else { break }
        }
        socket.shutdownWrite()
        socket.lingerUntilPeerCloses()
        socket.close()
    }

    /// Writes what the session has to send; false if the socket is gone.
    private mutating func flush() -> Bool {
        guard session.outboundByteCount > 0 else { return true }
        let socket = self.socket
        return session.drainOutbound { bytes in (try? socket.writeAll(bytes)) != nil }
    }

    private mutating func handle(_ actions: ServerActions) throws {
        var more = ServerActions()
        for action in actions {
            switch action {
            case .streamOpened(let id, let grant):
                guard let application = DemoCatalog.application(named: grant.application) else {
                    try session.reset(stream: id, code: .streamRefused, into: &more)
                    continue
                }
                streams[id] = Stream(application: application)
                try run(application.opened(), on: id)
            case .streamData(let id, let data):
                try session.consumed(stream: id, count: data.count)
                if let application = streams[id]?.application { try run(application.received(Array(data)), on: id) }
            case .streamFinished(let id):
                if let application = streams[id]?.application { try run(application.peerFinished(), on: id) }
            case .streamWritable(let id):
                try send(id)
            case .streamClosed(let id, _):
                streams[id] = nil
            case .handshakeCompleted, .authenticated, .tokensInvalidated, .closed, .authenticationRequested:
                break
            }
        }
    }

    private mutating func run(_ output: [AppOutput], on id: UInt32) throws {
        for o in output {
            switch o {
            case .write(let bytes): streams[id]?.unsent += bytes
            case .finish: streams[id]?.finishWhenSent = true
            }
        }
        try send(id)
    }

    /// Sends as much of the stream's output as the client's window allows, then FIN if asked.
    private mutating func send(_ id: UInt32) throws {
        guard var stream = streams[id] else { return }
        if !stream.unsent.isEmpty {
            let taken = try stream.unsent.withUnsafeBytes { try session.write(stream: id, $0) }
            stream.unsent.removeFirst(taken)
        }
        var closed = false
        if stream.unsent.isEmpty, stream.finishWhenSent, !stream.finished {
            stream.finished = true
            var actions = ServerActions()
            try session.finish(stream: id, into: &actions)
            closed = actions.contains { if case .streamClosed = $0 { true } else { false } }
        }
        streams[id] = closed ? nil : stream
    }
}
