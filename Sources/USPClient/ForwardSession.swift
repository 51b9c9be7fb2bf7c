import NIOCore
import NIOPosix

/// The one USP session a forward keeps (`usp forward`, TCP and UDP), as `ssh -L` keeps one SSH
/// connection: every local connection or UDP flow is a stream on it. The session is opened on
/// first use with the saved login (unless anonymous) and again after it was lost. An application
/// token is fetched ahead of need, so a new local connection usually opens its stream at once.
public actor ForwardSession {
    public let server: ServerURI
    public let home: ClientHome
    public let application: String
    public let textFields: [String: String]
    public let options: USPConnectionOptions
    /// Streams opened so far, and sessions opened (1 unless the session was lost).
    public private(set) var streamsOpened = 0
    public private(set) var sessionsOpened = 0
    private var connection: Task<USPConnection, any Error>?
    /// A token fetched ahead, with when (it is used only while well inside its lifetime).
    private var spare: (token: String, at: ContinuousClock.Instant)?
    private var prefetch: Task<Void, Never>?
    static let spareFreshness: Duration = .seconds(15)

    /// Every session it opens lives on one event loop (`options.eventLoopGroup`, or one loop of
    /// it): a forward puts its local connections on that loop too, so that a local read is sealed
    /// and sent on the thread that read it.
    public init(server: ServerURI, home: ClientHome, application: String, textFields: [String: String] = [:],
                options: USPConnectionOptions = USPConnectionOptions()) {
        self.server = server
        self.home = home
        self.application = application
        self.textFields = textFields
        eventLoop = (options.eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton).next()
        var pinned = options
        pinned.eventLoopGroup = eventLoop
        self.options = pinned
    }

    /// The loop the sessions live on.
    public nonisolated let eventLoop: any EventLoop

    /// A new stream to the application; one retry on a fresh session if the current one is gone.
    public func openStream() async throws -> USPStream {
        do {
            return try await openOnce()
        } catch let e as USPClientError where Self.sessionIsGone(e) {
            drop()
            return try await openOnce()
        }
    }

    /// Checks now that the server, the login and the application are there (before listening).
    public func check() async throws {
        let c = try await session()
        _ = try await c.offer(named: application)
    }

    public func close() async {
        prefetch?.cancel()
        let c = connection
        connection = nil
        spare = nil
        if let c, let open = try? await c.value { await open.close() }
    }

    private func openOnce() async throws -> USPStream {
        let c = try await session()
        let token: String
        if let s = spare, ContinuousClock.now - s.at < Self.spareFreshness {
            token = s.token
        } else {
            token = try await fetchToken(c)
        }
        spare = nil
        let stream = try await c.openStream(token: token)
        streamsOpened += 1
        refill(c)
        return stream
    }

    private func fetchToken(_ c: USPConnection) async throws -> String {
        textFields.isEmpty ? try await c.requestApplication(name: application)
                           : try await c.requestApplication(name: application, textFields: textFields)
    }

    /// Fetches the next token in the background.
    private func refill(_ c: USPConnection) {
        guard prefetch == nil else { return }
        prefetch = Task {
            let token = try? await fetchToken(c)
            if let token { spare = (token, .now) }
            prefetch = nil
        }
    }

    private func session() async throws -> USPConnection {
        if let connection { return try await connection.value }
        let (server, home, options) = (self.server, self.home, self.options)
        let task = Task { try await USPConnection.connectForMenu(to: server, home: home, options: options, useSavedLogin: !options.anonymous, notice: { _ in }) }
        connection = task
        do {
            let c = try await task.value
            sessionsOpened += 1
            return c
        } catch {
            connection = nil
            throw error
        }
    }

    /// Forgets a session that is gone: the next stream opens a new one.
    private func drop() {
        connection = nil
        spare = nil
        prefetch?.cancel()
        prefetch = nil
    }

    static func sessionIsGone(_ e: USPClientError) -> Bool {
        e.code == .connectionLost || e.code == .unreachable
    }
}
