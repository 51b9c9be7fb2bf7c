import USPCore
import USPNIO

/// A USP client over a blocking socket: a `ClientSession` driven by hand, for end-to-end tests.
public final class SocketClient {
    public let socket: RawSocket
    public var session: ClientSession
    public var log = ClientLog()
    /// Wire bytes sent and received so far (handshake included).
    public private(set) var bytesSent = 0
    public private(set) var bytesReceived = 0

    public init(host: String = "127.0.0.1", port: Int, source: String? = nil,
                mode: InitiatorHandshake.Mode = .knownServer(serverKey: Fixtures.serverKey.publicKey, clientStatic: Fixtures.clientKey)) throws {
        socket = try RawSocket(host: host, port: port, source: source)
        session = try ClientSession(mode: mode)
    }

    public func start(_ request: ClientStart = ClientStart()) throws {
        try session.start(request, now: ServerClock.now())
        try flush()
    }

    public func flush() throws {
        guard session.outboundByteCount > 0 else { return }
        let bytes = session.drainOutbound { Array($0) }
        bytesSent += bytes.count
        try socket.send(bytes)
    }

    /// Reads and handles input until `done(log)` or the timeout; true if `done` was reached.
    @discardableResult
    public func pump(timeout: Double = 5, until done: (ClientLog) -> Bool) throws -> Bool {
        let end = ServerClock.monotonic() + timeout
        while !done(log) {
            let left = end - ServerClock.monotonic()
            guard left > 0 else { return false }
            guard let bytes = socket.read(timeout: min(left, 0.2)) else { continue }
            bytesReceived += bytes.count
            var log = self.log
            if bytes.isEmpty {
                session.endOfInput { log.add($0) }
                self.log = log
                return done(log)
            }
            var consumed: [(UInt32, Int)] = []
            session.receive(bytes, now: ServerClock.now(), delegate: TrustAnyServerKey()) { e in
                if case .streamData(let s, let d) = e { consumed.append((s, d.count)) }
                log.add(e)
            }
            self.log = log
            // The test "consumes" data at once: credit goes back to the server.
            for (s, n) in consumed { try session.consumed(stream: s, count: n) }
            try flush()
        }
        return true
    }

    /// Handles what arrives within `timeout` (at most one read).
    public func pumpOnce(timeout: Double) throws {
        var first = true
        try pump(timeout: timeout) { _ in defer { first = false }; return !first }
    }

    public func pumpMenu() throws -> Bool {
        try pump { !$0.menus.isEmpty }
    }

    public func request(_ services: [ServiceIndex: [String: JSONValue]], authentication: AuthenticationRequest? = nil) throws {
        let before = log.replies.count
        try session.requestServices(services, authentication: authentication)
        try flush()
        try pump { $0.replies.count > before }
    }

    public func login(_ user: String, _ password: String) throws {
        let menus = log.menus.count
        try request([:], authentication: .credentials(["auth_method": "password", "user": .string(user), "password": .string(password)]))
        try pump(timeout: 2) { $0.menus.count > menus }
    }

    public func write(_ stream: UInt32, _ text: String) throws {
        let bytes = Array(text.utf8)
        let n = try bytes.withUnsafeBytes { try session.write(stream: stream, $0) }
        precondition(n == bytes.count, "test writes fit the window")
        try flush()
    }

    public func text(_ stream: UInt32) -> String { String(decoding: log.data[stream] ?? [], as: UTF8.self) }
}
