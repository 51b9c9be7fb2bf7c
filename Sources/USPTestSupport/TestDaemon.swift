import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import USPConfig
import USPServer
import USPStore

/// The daemon, in-process, on loopback port 0, with a NIO echo server behind the `notes` tcp app.
public final class TestDaemon: @unchecked Sendable {
    public let group: MultiThreadedEventLoopGroup
    public let store = Fixtures.store()
    public let daemon: USPDaemon
    public let serviceGroup: ServiceGroup
    public let echoChannel: any Channel
    private var task: Task<Void, any Error>?
    public private(set) var port4 = 0
    public private(set) var port6: Int?
    /// What the daemon's apps.d loader returns; change it to see a reload.
    public let applications: ApplicationsBox

    /// `backing`: the store the daemon uses (default: `store`, in memory).
    public init(handshakeTimeout: Double = 1, idleTimeout: Double = 600, anonymousSessionLifetime: Double = 60, listen: [String] = ["127.0.0.1:0", "[::1]:0"],
                maxConnections: Int = 4096, maxUnauthenticated: Int = 256,
                allowFirstContact: Bool = true, silentHold: SilentHoldTime = SilentHoldTime(minimum: 0.3, maximum: 0.9, distribution: .uniform),
                handshakeRate: Double = 20, handshakeBurst: Int = 5, maxSilentHolds: Int = 4096,
                backing: (any USPStore)? = nil, threads: Int = 2,
                verifyPassword: @escaping @Sendable (String, String) -> Bool = testVerifyPassword) throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        echoChannel = try ServerBootstrap(group: group)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        let echoPort = echoChannel.localAddress!.port!
        var logger = Logger(label: "uspd-test")
        logger.logLevel = .notice
        let used: any USPStore = backing ?? store
        let policy = ServerPolicy(store: used, catalog: ApplicationCatalog(), audit: AuditLog(store: used, logger: logger, flushInterval: .zero),
                                  verifyPassword: verifyPassword, logger: logger)
        var options = ServerRuntime.Options()
        options.listen = listen
        options.handshakeTimeout = handshakeTimeout
        options.idleTimeout = idleTimeout
        options.anonymousSessionLifetime = anonymousSessionLifetime
        options.drainTimeout = 3
        options.maxConnections = maxConnections
        options.maxUnauthenticated = min(maxUnauthenticated, maxConnections)
        options.reloadInterval = 0.2
        options.allowFirstContact = allowFirstContact
        options.silentHold = silentHold
        options.handshakeRate = handshakeRate
        options.handshakeBurst = handshakeBurst
        options.maxSilentHolds = maxSilentHolds
        let runtime = ServerRuntime(options: options, staticKey: Fixtures.serverKey, policy: policy, logger: logger)
        let applications = ApplicationsBox(Fixtures.applications(tcpPort: echoPort))
        self.applications = applications
        daemon = USPDaemon(runtime: runtime, group: group, loadApplications: { [applications] in applications.withLock { $0 } })
        serviceGroup = ServiceGroup(configuration: .init(services: [daemon], logger: logger))
    }

    public func start() async throws {
        let group = serviceGroup
        task = Task { try await group.run() }
        let addresses = try await daemon.boundAddresses()
        for a in addresses {
            if case .v4 = a { port4 = a.port! }
            if case .v6 = a { port6 = a.port! }
        }
    }

    public func stop() async throws {
        await serviceGroup.triggerGracefulShutdown()
        _ = try? await task?.value
        try? await echoChannel.close()
        try await group.shutdownGracefully()
    }
}
