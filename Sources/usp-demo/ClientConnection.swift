import USPCore

/// A `ClientSession` over a real TCP socket, driven step by step from the demo's main thread:
/// calls on the session go out at once, and `next` reads until the event the demo waits for.
final class ClientConnection {
    static let readTimeout = 5

    private var session: ClientSession
    private let socket: TCPSocket
    private let trust: any ClientSessionDelegate
    private let tap: WireTap
    private var inbox: [ClientNote] = []
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    private var ended = false
    /// Set when the session reports `.closed`: nil inside for a clean CLOSE.
    private var endReason: USPError??
    private(set) var meter = WireMeter()

    init(mode: InitiatorHandshake.Mode, socket: TCPSocket, trust: any ClientSessionDelegate = TrustAnyServerKey(), tap: WireTap) throws {
        session = try ClientSession(mode: mode)
        self.socket = socket
        self.trust = trust
        self.tap = tap
        socket.setReadTimeout(Self.readTimeout)
        tap.noteConnection()
    }

    var applicationStream: UInt32? { session.applicationStream }

    /// Writes message 1 (with the initial request and first bytes, for IK and NK).
    func start(_ request: ClientStart = ClientStart()) throws {
        try session.start(request, now: .now())
        try flush()
    }

    /// Calls the session (request, open, write…) and sends what it produced.
    func perform<T>(_ body: (inout ClientSession) throws -> T) throws -> T {
        let result = try body(&session)
        try flush()
        return result
    }

    /// Bytes on the wire since the last call.
    func takeDelta() -> WireMeter.Delta { meter.takeDelta() }

    /// Returns the first event `match` accepts, reading from the socket as long as needed.
    /// Events it skips stay queued for later calls.
    func next<T>(_ what: String, _ match: (ClientNote) -> T?) throws -> T {
        while true {
            for (i, note) in inbox.enumerated() {
                if let found = match(note) {
                    inbox.remove(at: i)
                    return found
                }
            }
            guard !ended else { throw DemoError("waiting for \(what): the session ended (\(closeReason))") }
            try readOnce()
        }
    }

    /// Waits for the server to accept `stream`, then collects its bytes until the server's FIN,
    /// and finishes the client's side too.
    func readStream(_ stream: UInt32, name: String) throws -> [UInt8] {
        enum Start { case accepted, rejected(USPError.Code) }
        enum Chunk { case data([UInt8]), end }
        let start: Start = try next("the \(name) stream to open") {
            switch $0 {
            case .accepted(stream): .accepted
            case .rejected(stream, let code): .rejected(code)
            default: nil
            }
        }
        if case .rejected(let code) = start { throw DemoError("the server refused the \(name) stream: \(code.name)") }
        var bytes: [UInt8] = []
        while case .data(let chunk) = try next("\(name) data", {
            switch $0 {
            case .data(stream, let d): Chunk.data(d)
            case .finished(stream): Chunk.end
            default: nil
            }
        }) {
            bytes += chunk
        }
        var actions = ClientActions()
        try perform { try $0.finish(stream: stream, into: &actions) }
        inbox += actions.map(ClientNote.init)
        return bytes
    }

    /// Sends CLOSE, half-closes, and waits for the server to close its side.
    func close() throws {
        if !ended {
            var actions = ClientActions()
            session.close(into: &actions)
            inbox += actions.map(ClientNote.init)
            try flush()
        }
        socket.shutdownWrite()
        while (try? readRaw()) ?? 0 > 0 {}
        socket.close()
    }

    /// Why the session ended, as a code name.
    var closeReason: String {
        guard let end = endReason else { return ended ? "connection closed" : "open" }
        return end.map(\.code.name) ?? "closed cleanly"
    }

    // MARK: - I/O

    private func readOnce() throws {
        let n = try readRaw()
        var actions = ClientActions()
        if n == 0 {
            session.endOfInput(into: &actions)
        } else {
            buffer.withUnsafeBytes { bytes in
                session.receive(UnsafeRawBufferPointer(rebasing: bytes[0..<n]), now: .now(), delegate: trust, into: &actions)
            }
        }
        inbox += actions.map(ClientNote.init)
        for case .closed(let error) in actions { endReason = .some(error) }
        // The demo takes stream bytes as they come: return the window credit.
        for case .streamData(let stream, let data) in actions { try session.consumed(stream: stream, count: data.count) }
        if session.state == .closed { ended = true }
        try flush()
    }

    private func readRaw() throws -> Int {
        let n = try socket.read(into: &buffer)
        buffer.withUnsafeBytes { tap.record(received: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        meter.countReceived(n)
        if n == 0 { ended = true }
        return n
    }

    private func flush() throws {
        guard session.outboundByteCount > 0 else { return }
        let (socket, tap) = (self.socket, self.tap)
        let written: Result<Int, DemoError> = session.drainOutbound { bytes in
            tap.record(sent: bytes)
            do throws(DemoError) { try socket.writeAll(bytes) } catch { return .failure(error) }
            return .success(bytes.count)
        }
        meter.countSent(try written.get())
    }
}
