import Foundation
import Logging
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization
import USPConfig
import USPCore
import USPNIO
import USPStore
import USPUnix

/// Everything the connections of one daemon share.
public final class ServerRuntime: Sendable {
    public struct Options: Sendable {
        /// `host:port` or `[v6]:port`; port 0 picks a free one (see `USPDaemon.boundAddresses`).
        public var listen: [String] = ["127.0.0.1:7300"]
        /// Entries of `listen` whose bind may fail with only a warning (e.g. `[::1]` on a host without IPv6).
        public var optionalListen: Set<String> = []
        /// Listening sockets handed over by systemd socket activation (`LISTEN_FDS`, from fd 3);
        /// when present they are used instead of `listen`.
        public var inheritedSockets: [CInt] = []
        public var allowFirstContact = true
        /// TCP Fast Open on the listening sockets (`tcp_fast_open`).
        public var tcpFastOpen = false
        public var handshakeTimeout: Double = 10
        /// Stealth only: when a connection that never proved it knows the server key gets its FIN.
        public var silentHold = SilentHoldTime()
        /// Stealth only: connections held silently at once.
        public var maxSilentHolds = 4096
        /// Seconds without input after which a session with no open stream is closed (`idle_timeout`); 0: never.
        public var idleTimeout: Double = 600
        /// Seconds after accept at which a session that has not logged in and has no open stream
        /// is closed (`idle_timeout`), whatever it sends; 0: never.
        public var anonymousSessionLifetime: Double = 60
        public var maxConnections = 4096
        public var maxUnauthenticated = 256
        public var handshakeRate: Double = 20
        public var handshakeBurst = 5
        /// Addresses that authenticated within `knownSourceTime` seconds: their own bucket.
        public var knownHandshakeRate: Double = 200
        public var knownHandshakeBurst = 50
        public var knownSourceTime: Double = 600
        /// Concurrent connections per source address (IPv6: per /64); nil: no limit.
        public var maxConnectionsPerSource: Int?
        /// The network a source address is taken to belong to, for fair admission (/24, /64).
        public var sourcePrefix = SourcePrefix.Lengths()
        /// Streams opened per minute per identity (anonymous: per source address); nil: no limit.
        public var maxStreamsPerMinute: Int?
        /// Concurrent streams per identity (anonymous: per source address); nil: no limit.
        public var maxStreamsPerIdentity: Int?
        /// Concurrent streams per application, a ceiling on each one's `max_sessions`; nil: no limit.
        public var maxStreamsPerApplication: Int?
        public var session = SessionConfiguration()
        /// How often apps.d is polled for changes (SIGHUP reloads at once).
        public var reloadInterval: Double = 2
        /// How often the store is checked for tokens revoked by another process, seconds.
        public var revocationPollInterval: Double = 1
        /// How long a drain waits for sessions to go after CLOSE shutting_down.
        public var drainTimeout: Double = 10
        /// Applied every `maintenanceInterval` seconds, with the purge of expired tokens.
        public var auditRetention = AuditRetention()
        public var maintenanceInterval: Double = 600
        /// The control socket `uspd status` and `uspd sessions` use (`DATA/uspd.sock`); nil: none.
        public var adminSocket: String?
        /// Where `GET /metrics` is served (`metrics_listen`); nil: nowhere.
        public var metricsListen: String?
        /// This node's name (`node_name`, the host name): a store that keeps a fleet's directory
        /// (`FleetDirectory`) gets this node's live sessions under it every `fleetReportInterval`
        /// seconds, for `uspd sessions --fleet`. nil: no report.
        public var nodeName: String?
        public var fleetReportInterval: Double = 2
        public init() {}

        public init(config: ServerConfig) {
            listen = config.listen
            allowFirstContact = config.allowFirstContact
            tcpFastOpen = config.tcpFastOpen
            handshakeTimeout = config.handshakeTimeout
            silentHold = config.silentHold
            maxSilentHolds = config.maxSilentHolds
            idleTimeout = config.idleTimeout
            anonymousSessionLifetime = config.anonymousSessionLifetime
            maxConnections = config.maxConnections
            maxUnauthenticated = config.maxUnauthenticated
            handshakeRate = config.handshakeRate
            handshakeBurst = config.handshakeBurst
            knownHandshakeRate = config.knownHandshakeRate
            knownHandshakeBurst = config.knownHandshakeBurst
            knownSourceTime = config.knownSourceTime
            func limit(_ n: Int) -> Int? { n > 0 ? n : nil }
            maxConnectionsPerSource = limit(config.maxConnectionsPerSource)
            sourcePrefix = SourcePrefix.Lengths(v4: config.sourcePrefixV4, v6: config.sourcePrefixV6)
            auditRetention = AuditRetention(config: config)
            maxStreamsPerMinute = limit(config.maxStreamsPerMinute)
            maxStreamsPerIdentity = limit(config.maxStreamsPerIdentity)
            maxStreamsPerApplication = limit(config.maxStreamsPerApplication)
            metricsListen = config.metricsListen.isEmpty ? nil : config.metricsListen
        }
    }

    public let options: Options
    public let staticKey: KeyPair
    public let policy: ServerPolicy
    public let registry = SessionRegistry()
    public let admission: AdmissionControl
    public let rateLimiter: HandshakeRateLimiter
    /// Stealth only: the connections held silently (nil when first contact is allowed).
    public let silentHolds: SilentHoldRoom?
    public let streamLimiter: StreamLimiter
    public let launcher: Launcher
    public var audit: AuditLog { policy.audit }
    /// What is counted for monitoring: the audit log's (one set for the whole daemon).
    public var metrics: ServerMetrics { policy.audit.metrics }
    public let logger: Logger
    /// Load shedding can refuse thousands of connections a second: their lines are limited.
    let logLimiter = RepeatedLogLimiter()

    public init(options: Options, staticKey: KeyPair, policy: ServerPolicy, launcher: Launcher? = nil,
                logger: Logger = Logger(label: "uspd")) {
        self.options = options
        self.staticKey = staticKey
        self.policy = policy
        self.admission = AdmissionControl(maxConnections: options.maxConnections, maxStarting: options.maxUnauthenticated,
                                          maxPerSource: options.maxConnectionsPerSource, prefixLengths: options.sourcePrefix)
        self.rateLimiter = HandshakeRateLimiter(rate: options.handshakeRate, burst: options.handshakeBurst,
                                                knownRate: options.knownHandshakeRate, knownBurst: options.knownHandshakeBurst,
                                                knownFor: options.knownSourceTime)
        self.silentHolds = options.allowFirstContact ? nil
            : SilentHoldRoom(capacity: options.maxSilentHolds, prefixLengths: options.sourcePrefix)
        self.streamLimiter = StreamLimiter(perMinute: options.maxStreamsPerMinute, concurrent: options.maxStreamsPerIdentity)
        self.launcher = launcher ?? Launcher(logger: logger, audit: policy.audit, maxSessionsPerApplication: options.maxStreamsPerApplication,
                                             relayFreeSessions: registry.relayFree)
        self.logger = logger
    }

    /// Sets up an accepted connection, or turns it away (no byte sent) when a limit refuses it: at
    /// once, or (stealth) on a silent hold like any stranger's, so that no limit shows from outside.
    func initialize(_ channel: any Channel) -> EventLoopFuture<Void> {
        let peer = ServerSessionHandler.peerAddress(of: channel.remoteAddress)
        // Drawn at accept, before anything is read: when a stranger's connection ends depends on nothing it does.
        let silentHold = silentHolds.map { room in
            var generator = SystemRandomNumberGenerator()
            return SilentHold(until: .now() + .nanoseconds(Int64(options.silentHold.draw(using: &generator) * 1e9)), pool: room)
        }
        func turnAway() -> EventLoopFuture<Void> {
            guard let silentHold else { return channel.close() }
            return channel.eventLoop.makeCompletedFuture { try silentHold.install(on: channel, peer: peer) }
        }
        guard rateLimiter.admit(peer, now: ServerClock.monotonic()) else {
            metrics.refused(limit: "handshake_rate")
            logger.debug("\(peer): handshake rate limit, connection dropped")
            return turnAway()
        }
        // The handler exists only once admitted; eviction reaches it through this box, on its loop.
        let target = NIOLoopBoundBox<(handler: ServerSessionHandler, hooks: ConnectionHooks)?>(nil, eventLoop: channel.eventLoop)
        let admission: AdmissionControl.Admission
        switch self.admission.admit(from: peer, evict: {
            channel.eventLoop.execute {
                guard let (handler, hooks) = target.value else { channel.close(promise: nil); return }
                guard handler.state == .awaitingMessage1 else { hooks.giveWay(handler); return }
                // Nothing read from it yet: its message 1 may already wait in the socket, behind a
                // flood that keeps this loop busy. It has `giveWayGrace` to be read; a client that
                // knows the key is proven by then and stays (`giveWay` reinstates it), a stranger
                // goes as before. Connections whose message 1 was read go at once.
                channel.eventLoop.scheduleTask(in: ConnectionHooks.giveWayGrace) { hooks.giveWay(handler) }
            }
        }) {
        case .success(let a): admission = a
        case .failure(.tooManyFromSource):
            metrics.refused(limit: "max_connections_per_source")
            // Before the handshake nothing is sent (darkness to strangers); the audit
            // row and the log line say which limit. The handshake rate limit above bounds how
            // many such rows one source can cause.
            let detail = "max_connections_per_source (\(options.maxConnectionsPerSource ?? 0)) reached for \(HandshakeRateLimiter.sourceKey(peer))"
            logLimiter.log(logger, .notice, kind: "max_connections_per_source", now: ServerClock.monotonic(), "\(peer): \(detail), connection dropped")
            audit.note(AuditEvent(kind: .rateLimited, peerAddress: peer, result: "dropped", detail: detail))
            return turnAway()
        case .failure(.tooManyConnections):
            metrics.refused(limit: "max_connections")
            logLimiter.log(logger, .notice, kind: "max_connections", now: ServerClock.monotonic(),
                           "\(peer): max_connections (\(options.maxConnections)) reached, none can give way, connection dropped")
            return turnAway()
        case .failure(.tooManyStarting):
            metrics.refused(limit: "max_unauthenticated")
            logLimiter.log(logger, .notice, kind: "max_unauthenticated", now: ServerClock.monotonic(),
                           "\(peer): max_unauthenticated (\(options.maxUnauthenticated)) reached, none can give way, connection dropped")
            return turnAway()
        }
        metrics.accepted()
        if let evicted = admission.evicted {
            metrics.gaveWay()
            logLimiter.log(logger, .notice, kind: "eviction", now: ServerClock.monotonic(),
                           "\(peer): \(evicted.wasStarting ? "max_unauthenticated" : "max_connections") full, a connection from \(evicted.prefix) gave way")
        }
        let session = ServerSession(staticKey: staticKey, peerAddress: peer, configuration: options.session,
                                    allowFirstContact: options.allowFirstContact)
        let hooks = ConnectionHooks(server: self, ticket: admission.ticket)
        let handler = ServerSessionHandler(session: session, policy: policy, hooks: hooks,
                                           configuration: .init(handshakeTimeout: .nanoseconds(Int64(options.handshakeTimeout * 1e9)),
                                                                idleTimeout: options.idleTimeout > 0 ? .nanoseconds(Int64(options.idleTimeout * 1e9)) : nil,
                                                                anonymousLifetime: options.anonymousSessionLifetime > 0
                                                                    ? .nanoseconds(Int64(options.anonymousSessionLifetime * 1e9)) : nil,
                                                                silentHold: silentHold))
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(handler)
            target.value = (handler, hooks)
            registry.register(handler, on: channel.eventLoop)
        }
    }
}

/// The daemon as a swift-service-lifecycle `Service`: binds a listener for every `listen` entry
/// (IPv4 and IPv6), serves until a graceful shutdown (SIGTERM/SIGINT through the ServiceGroup),
/// then drains: stops accepting, sends CLOSE `shutting_down` to every session and waits for them
/// (at most `drainTimeout`). Applications are reloaded on SIGHUP (`reloadApplications()`) and
/// apps.d is polled every `reloadInterval` seconds; a broken apps.d keeps the last good catalog.
public final class USPDaemon: Service, Sendable {
    public let runtime: ServerRuntime
    public let group: any EventLoopGroup
    private let loadApplications: @Sendable () throws -> [ApplicationDefinition]
    private let channels = Mutex<[any Channel]>([])
    private let ready = Mutex<[CheckedContinuation<[SocketAddress], any Error>]>([])
    private let bound = Mutex<[SocketAddress]?>(nil)
    private let lastReloadError = Mutex<String?>(nil)
    private let adminSocket = Mutex<AdminSocket?>(nil)
    private let metricsRegistry: PrometheusCollectorRegistry?
    private let metricsEndpoint = Mutex<MetricsEndpoint?>(nil)
    private let onReady: @Sendable ([SocketAddress]) -> Void
    private let onHangup: @Sendable () -> Void
    private let onDraining: @Sendable () -> Void

    /// `loadApplications` reads apps.d (called at start, on SIGHUP and every `reloadInterval`);
    /// `onHangup` runs on SIGHUP before it (e.g. to make a caching loader read everything again).
    /// `onReady` runs once every listener is bound, `onDraining` when a graceful shutdown begins
    /// (uspd tells systemd READY=1 and STOPPING=1 there).
    public init(runtime: ServerRuntime, group: any EventLoopGroup,
                loadApplications: @escaping @Sendable () throws -> [ApplicationDefinition],
                onHangup: @escaping @Sendable () -> Void = {},
                onReady: @escaping @Sendable ([SocketAddress]) -> Void = { _ in },
                metricsRegistry: PrometheusCollectorRegistry? = nil,
                onDraining: @escaping @Sendable () -> Void = {}) {
        self.metricsRegistry = metricsRegistry
        self.runtime = runtime
        self.group = group
        self.loadApplications = loadApplications
        self.onHangup = onHangup
        self.onReady = onReady
        self.onDraining = onDraining
    }

    var logger: Logger { runtime.logger }

    /// The addresses actually bound, once listening (waits for it).
    public func boundAddresses() async throws -> [SocketAddress] {
        if let b = bound.withLock({ $0 }) { return b }
        return try await withCheckedThrowingContinuation { c in
            let now = bound.withLock { b -> [SocketAddress]? in
                if let b { return b }
                ready.withLock { $0.append(c) }
                return nil
            }
            if let now { c.resume(returning: now) }
        }
    }

    /// The addresses listened on, as bound (empty until then).
    public var listeningAddresses: [ListenAddress] {
        (bound.withLock { $0 } ?? []).compactMap { a in
            guard let ip = a.ipAddress, let port = a.port else { return nil }
            return ListenAddress(host: ip, port: port)
        }
    }

    /// Why apps.d last failed to load, while the previous applications are kept; nil when it loads.
    public var lastReloadProblem: String? { lastReloadError.withLock { $0 } }

    /// Reads apps.d again; keeps the current catalog if it fails. Returns an error text or nil.
    @discardableResult
    public func reloadApplications(reason: String = "reload") -> String? {
        do {
            let definitions = try loadApplications()
            let current = runtime.policy.catalog.snapshot().entries.map(\.definition)
            lastReloadError.withLock { $0 = nil }
            let changed = Set(definitions) != Set(current) || definitions.count != current.count
            if changed { runtime.policy.catalog.replace(with: definitions) }
            if changed || reason == "SIGHUP" {
                logger.info("\(reason): \(definitions.count) application(s): \(definitions.map(\.name).sorted().joined(separator: ", "))\(changed ? "" : " (unchanged)")")
            }
            return nil
        } catch {
            let text = "\(error)"
            let repeated = lastReloadError.withLock { old -> Bool in
                defer { old = text }
                return old == text
            }
            if !repeated { logger.error("\(reason): apps.d not loaded, keeping the previous applications: \(text)") }
            return text
        }
    }

    public func run() async throws {
        checkDescriptorLimit()
        reloadApplications(reason: "start")
        let addresses: [SocketAddress]
        do {
            addresses = try await bind()
        } catch {
            let waiting = ready.withLock { w in defer { w = [] }; return w }
            for c in waiting { c.resume(throwing: error) }
            throw error
        }
        bound.withLock { $0 = addresses }
        if runtime.options.adminSocket != nil || runtime.options.metricsListen != nil {
            do {
                if let path = runtime.options.adminSocket {
                    let socket = try AdminSocket(path: path, queries: AdminQueries(daemon: self), logger: logger)
                    adminSocket.withLock { $0 = socket }
                }
                if let text = runtime.options.metricsListen, let registry = metricsRegistry {
                    let address = try ListenAddress.parse(text)
                    let endpoint = try await MetricsEndpoint.start(address: address, group: group, registry: registry, daemon: self)
                    metricsEndpoint.withLock { $0 = endpoint }
                    if !(address.host.hasPrefix("127.") || address.host == "::1" || address.host == "localhost") {
                        logger.warning("metrics_listen \(text) is not a loopback address: anyone who reaches it reads the metrics (plain HTTP, no authentication)")
                    }
                    let bound = endpoint.channel.localAddress.flatMap { a in a.port.map { ListenAddress(host: a.ipAddress ?? address.host, port: $0) } } ?? address
                    logger.info("metrics on http://\(bound.text)/metrics")
                }
            } catch {
                adminSocket.withLock { $0?.stop(); $0 = nil }
                for c in channels.withLock({ $0 }) { try? await c.close() }
                let waiting = ready.withLock { w in defer { w = [] }; return w }
                for c in waiting { c.resume(throwing: error) }
                throw error
            }
        }
        let waiting = ready.withLock { w in defer { w = [] }; return w }
        for c in waiting { c.resume(returning: addresses) }
        onReady(addresses)

        let hangups = AsyncStream<Void> { continuation in
            let source = HangupSource.install { continuation.yield() }
            continuation.onTermination = { _ in source.cancel() }
        }

        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { tasks in
                tasks.addTask { [self] in
                    for await _ in hangups {
                        onHangup()
                        reloadApplications(reason: "SIGHUP")
                    }
                }
                tasks.addTask { [self] in
                    var sinceMaintenance = 0.0
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(Int(runtime.options.reloadInterval * 1000)))
                        if Task.isCancelled { break }
                        reloadApplications(reason: "apps.d changed")
                        sinceMaintenance += runtime.options.reloadInterval
                        if sinceMaintenance >= runtime.options.maintenanceInterval {
                            sinceMaintenance = 0
                            maintainStore()
                        }
                    }
                }
                tasks.addTask { [self] in
                    // Revocations made by another process (uspd user remove) or another node of a
                    // fleet end streams here too: pushed by a store that can (PostgreSQL), else polled.
                    let watcher = RevocationWatcher(store: runtime.policy.store, registry: runtime.registry, logger: logger)
                    let following = (runtime.policy.store as? any RevocationFeed)?.followRevocations(
                        revoked: { [runtime, logger, group] ids in
                            let tokens = Set(ids.compactMap(TokenProof.TokenID.init(text:)))
                            guard !tokens.isEmpty else { return }
                            logger.info("\(tokens.count) token(s) revoked in the store; ending their streams")
                            _ = runtime.registry.revoke(tokens, on: group.next())
                        },
                        // After a gap in the feed, what it may have missed.
                        connected: { [group] in watcher.poll(on: group.next()) })
                    defer { following?.stop() }
                    let interval = following == nil ? runtime.options.revocationPollInterval : max(runtime.options.revocationPollInterval, 30)
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
                        if Task.isCancelled { break }
                        watcher.poll(on: group.next())
                    }
                }
                tasks.addTask { [runtime, logger, group] in
                    // A login's expiry ends the streams it covers, as its revocation does.
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        let expired = Set(runtime.policy.loginExpiries.takeExpired(now: Date()).compactMap(TokenProof.TokenID.init(text:)))
                        guard !expired.isEmpty else { continue }
                        logger.info("\(expired.count) login(s) expired; ending the streams opened under them")
                        _ = runtime.registry.revoke(expired, code: .tokenExpired, on: group.next())
                    }
                }
                if let node = runtime.options.nodeName, let directory = runtime.policy.store as? any FleetDirectory {
                    tasks.addTask { [self] in
                        let queries = AdminQueries(daemon: self)
                        while !Task.isCancelled {
                            await reportSessions(queries, as: node, to: directory)
                            try? await Task.sleep(for: .milliseconds(Int(runtime.options.fleetReportInterval * 1000)))
                        }
                        let logger = logger
                        await Self.offThePool { do { try directory.withdrawNode(node) } catch { logger.warning("\(error)") } }
                    }
                }
                tasks.addTask { [self] in
                    let all = channels.withLock { $0 }
                    for c in all { try? await c.closeFuture.get() }
                }
                await tasks.next()
                tasks.cancelAll()
            }
        } onGracefulShutdown: { [self] in
            onDraining()
            logger.info("draining: no new connections; telling \(runtime.registry.count) session(s) shutting_down")
            let all = channels.withLock { $0 }
            for c in all { c.close(promise: nil) }
        }
        await drain()
    }

    /// Writes this node's live sessions (what `uspd sessions --json` answers) into the fleet's
    /// directory. Both the wait for the event loops and the query block: off the cooperative pool.
    private func reportSessions(_ queries: AdminQueries, as node: String, to directory: any FleetDirectory) async {
        let logger = logger
        await Self.offThePool {
            let answer = queries.sessionsAnswer()
            guard let text = try? String(decoding: answer.encoded(), as: UTF8.self) else { return }
            do {
                try directory.reportNode(node, report: text, at: Date())
            } catch {
                logger.warning("the fleet's directory did not take this node's sessions: \(error)")
            }
        }
    }

    static func offThePool(_ body: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                body()
                done.resume()
            }
        }
    }

    /// Deletes tokens expired for a day and prunes the audit trail (`audit_max_age`, `audit_max_size`).
    func maintainStore() {
        let store = runtime.policy.store
        let purged = (try? store.purgeExpiredTokens(before: Date().addingTimeInterval(-86400))) ?? 0
        if purged > 0 { logger.info("purged \(purged) expired token(s)") }
        if let shared = store as? any SharedReplayCache {
            do { _ = try shared.purgeReplayCache(before: Date()) } catch { logger.error("\(error)") }
        }
        if let shared = store as? any SharedLoginPenalties {
            do { _ = try shared.purgeLoginPenalties(before: Date().addingTimeInterval(-runtime.policy.throttle.forgetAfter)) } catch { logger.error("\(error)") }
        }
        let retention = runtime.options.auditRetention
        guard !retention.isUnlimited else { return }
        do {
            let result = try retention.prune(store)
            if result.deleted > 0 {
                logger.info("audit retention: deleted \(result.deleted) row(s); \(result.rowsLeft) left, \(result.bytesLeft / 1024) KiB")
            }
            if let max = retention.maxBytes, result.bytesLeft > max {
                logger.warning("the audit trail takes \(result.bytesLeft / 1024) KiB, over audit_max_size, but its rows are younger than the login token lifetime and are kept")
            }
        } catch {
            logger.error("audit retention failed: \(error)")
        }
    }

    /// Closes every session with `shutting_down` and waits (bounded) until they are gone.
    func drain() async {
        let all = channels.withLock { $0 }
        for c in all { try? await c.close() }
        let loop = group.next()
        try? await runtime.registry.closeAll(code: .shuttingDown, on: loop).get()
        let deadline = ServerClock.monotonic() + runtime.options.drainTimeout
        while runtime.registry.count > 0, ServerClock.monotonic() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        adminSocket.withLock { $0?.stop(); $0 = nil }
        if let endpoint = metricsEndpoint.withLock({ $0 }) { await endpoint.stop() }
        logger.info("drained; \(runtime.registry.count) session(s) left")
        // The last connection_closed and stream_closed rows.
        runtime.audit.flush()
    }

    private func bootstrap(v6only: Bool) -> ServerBootstrap {
        let runtime = self.runtime
        var bootstrap = ServerBootstrap(group: group)
            // A deep accept queue: under a flood, a SYN dropped for a full queue costs a client a
            // retransmission (1 s, then 3 s) before uspd even sees it; admission decides instead.
            .serverChannelOption(ChannelOptions.backlog, value: 4096)
            .serverChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { [logger] channel in
                // Running out of descriptors must not spin the accept loop.
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptPause(logger: logger))
                }
            }
            .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            // A client's FIN is an event, not the end: the session may still owe it a CLOSE.
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 4)
            // Reads grow up to 256 KiB on a busy stream (four full records per read), and shrink
            // back on idle ones, so idle sessions hold no large buffers.
            .childChannelOption(ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 256 * 1024))
            .childChannelInitializer { channel in runtime.initialize(channel) }
        if v6only {
            bootstrap = bootstrap.serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
        }
        if runtime.options.tcpFastOpen {
            // TCP_FASTOPEN's value: how many connections may wait with data from their SYN.
            bootstrap = bootstrap.serverChannelOption(ChannelOptions.tcpOption(NIOBSDSocket.Option(rawValue: 23)), value: 256)
        }
        return bootstrap
    }

    /// Raises the soft descriptor limit to the hard one and warns when even that is below what
    /// `max_connections` may need: each connection holds its socket and usually an application's
    /// (a socket, or a process's pipes), plus what the daemon keeps open for itself.
    private func checkDescriptorLimit() {
        let (soft, hard) = DescriptorLimit.raiseSoftToHard()
        let needed = Self.descriptorsNeeded(maxConnections: runtime.options.maxConnections)
        if soft < needed {
            logger.warning("""
                the descriptor limit is \(soft) (hard limit \(hard)); max_connections \(runtime.options.maxConnections) may need \(needed): \
                raise it (LimitNOFILE= in the systemd unit, or ulimit -n) or lower max_connections
                """)
        } else {
            logger.debug("descriptor limit \(soft)")
        }
    }

    /// net.ipv4.tcp_fastopen of this network namespace, or nil if it cannot be read.
    static func kernelFastOpen() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/tcp_fastopen", encoding: .utf8) else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Descriptors `maxConnections` connections may need: two each, and 64 for the daemon.
    static func descriptorsNeeded(maxConnections: Int) -> Int { maxConnections * 2 + 64 }

    private func bind() async throws -> [SocketAddress] {
        let runtime = self.runtime
        if runtime.options.tcpFastOpen, let sysctl = Self.kernelFastOpen(), sysctl & 2 == 0 {
            logger.warning("tcp_fast_open is on, but net.ipv4.tcp_fastopen is \(sysctl): without its server bit (2) the kernel answers every SYN as usual; set it to 3 (sysctl -w net.ipv4.tcp_fastopen=3)")
        }
        var addresses: [SocketAddress] = []
        if !runtime.options.inheritedSockets.isEmpty {
            for fd in runtime.options.inheritedSockets {
                let channel = try await bootstrap(v6only: false).withBoundSocket(fd).get()
                channels.withLock { $0.append(channel) }
                if let local = channel.localAddress { addresses.append(local) }
                logger.info("listening on inherited socket \(fd) (\(channel.localAddress.map { "\($0)" } ?? "?"))")
            }
            return addresses
        }
        let listen = try runtime.options.listen.map(ListenAddress.parse)
        for address in listen {
            // When IPv4 and IPv6 listeners share a port, the IPv6 one must not also claim IPv4.
            let v6only = address.isIPv6 && listen.contains { !$0.isIPv6 && $0.port == address.port && address.port != 0 }
            let bootstrap = self.bootstrap(v6only: v6only)
            let channel: any Channel
            do {
                channel = try await bootstrap.bind(host: address.host, port: address.port).get()
            } catch where runtime.options.optionalListen.contains(address.text) || runtime.options.optionalListen.contains("\(address.host):\(address.port)") {
                logger.warning("not listening on \(address.text): \(error)")
                continue
            } catch {
                throw ListenError(address: address.text, underlying: "\(error)")
            }
            channels.withLock { $0.append(channel) }
            if let local = channel.localAddress { addresses.append(local) }
            let shown = channel.localAddress.flatMap { a in a.port.map { ListenAddress(host: a.ipAddress ?? address.host, port: $0).text } }
            logger.info("listening on \(shown ?? address.text)")
        }
        return addresses
    }
}

/// One `listen` entry: `127.0.0.1:7300`, `[::1]:7300`, `0.0.0.0:7300`, `[::]:7300`, `localhost:7300`.
public struct ListenAddress: Sendable, Hashable {
    public let host: String
    public let port: Int
    public var text: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
    public var isIPv6: Bool { host.contains(":") }

    public struct ParseError: Error, CustomStringConvertible {
        public let text: String
        public var description: String { "listen address \"\(text)\" is not host:port or [v6]:port" }
    }

    public static func parse(_ text: String) throws -> ListenAddress {
        let host: Substring, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { throw ParseError(text: text) }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { throw ParseError(text: text) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { throw ParseError(text: text) }
        return ListenAddress(host: String(host), port: port)
    }
}

public struct ListenError: Error, CustomStringConvertible {
    public let address: String
    public let underlying: String
    public var description: String { "cannot listen on \(address): \(underlying)" }
}

/// SIGHUP as a callback (a DispatchSource; the signal's default action is disabled meanwhile).
final class HangupSource: @unchecked Sendable {
    private let source: any DispatchSourceSignal

    private init(_ source: any DispatchSourceSignal) { self.source = source }

    static func install(_ handler: @escaping @Sendable () -> Void) -> HangupSource {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "uspd.sighup"))
        source.setEventHandler(handler: handler)
        source.resume()
        return HangupSource(source)
    }

    func cancel() { source.cancel() }
}
