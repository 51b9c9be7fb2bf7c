import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import USPConfig
import USPCore
import USPTestSupport
import USPNIO
import USPStore
@testable import USPServer

#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP socket for tests (poll with timeouts; never waits forever).
final class RawSocket {
    let fd: CInt
    private(set) var closedByPeer = false

    init(host: String, port: Int) throws {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else { throw SocketError("getaddrinfo \(host)") }
        defer { freeaddrinfo(result) }
        let s = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw SocketError("socket") }
        guard connect(s, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            close(s)
            throw SocketError("connect \(host):\(port): \(String(cString: strerror(errno)))")
        }
        fd = s
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw SocketError("send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// Waits up to `timeout` seconds for bytes; returns nil on timeout, [] at end of stream.
    func read(timeout: Double) -> [UInt8]? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let r = poll(&p, 1, Int32(timeout * 1000))
        guard r > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { closedByPeer = true; return [] }
        return Array(buffer[0..<n])
    }

    /// Reads until the peer closes or `timeout` passes: the bytes received and whether it closed.
    func readToEnd(timeout: Double) -> (bytes: [UInt8], closed: Bool) {
        let end = ServerClock.monotonic() + timeout
        var all: [UInt8] = []
        while ServerClock.monotonic() < end {
            guard let chunk = read(timeout: max(0.01, end - ServerClock.monotonic())) else { continue }
            if chunk.isEmpty { return (all, true) }
            all += chunk
        }
        return (all, false)
    }
}

struct SocketError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A USP client over a blocking socket: a `ClientSession` driven by hand, for end-to-end tests.
final class SocketClient {
    let socket: RawSocket
    var session: ClientSession
    var log = ClientLog()

    init(host: String = "127.0.0.1", port: Int, mode: InitiatorHandshake.Mode = .knownServer(serverKey: Fixtures.serverKey.publicKey,
                                                                                               clientStatic: Fixtures.clientKey)) throws {
        socket = try RawSocket(host: host, port: port)
        session = try ClientSession(mode: mode)
    }

    func start(_ request: ClientStart = ClientStart()) throws {
        try session.start(request, now: ServerClock.now())
        try flush()
    }

    func flush() throws {
        guard session.outboundByteCount > 0 else { return }
        let bytes = session.drainOutbound { Array($0) }
        try socket.send(bytes)
    }

    /// Reads and handles input until `done(log)` or the timeout; true if `done` was reached.
    @discardableResult
    func pump(timeout: Double = 5, until done: (ClientLog) -> Bool) throws -> Bool {
        let end = ServerClock.monotonic() + timeout
        while !done(log) {
            let left = end - ServerClock.monotonic()
            guard left > 0 else { return false }
            guard let bytes = socket.read(timeout: min(left, 0.2)) else { continue }
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
    func pumpOnce(timeout: Double) throws {
        var first = true
        try pump(timeout: timeout) { _ in defer { first = false }; return !first }
    }

    func pumpMenu() throws -> Bool {
        try pump { !$0.menus.isEmpty }
    }

    func request(_ services: [ServiceIndex: [String: JSONValue]], authentication: AuthenticationRequest? = nil) throws {
        let before = log.replies.count
        try session.requestServices(services, authentication: authentication)
        try flush()
        try pump { $0.replies.count > before }
    }

    func login(_ user: String, _ password: String) throws {
        let menus = log.menus.count
        try request([:], authentication: .credentials(["auth_method": "password", "user": .string(user), "password": .string(password)]))
        try pump(timeout: 2) { $0.menus.count > menus }
    }

    func write(_ stream: UInt32, _ text: String) throws {
        let bytes = Array(text.utf8)
        let n = try bytes.withUnsafeBytes { try session.write(stream: stream, $0) }
        precondition(n == bytes.count, "test writes fit the window")
        try flush()
    }

    func text(_ stream: UInt32) -> String { String(decoding: log.data[stream] ?? [], as: UTF8.self) }
}

/// The daemon, in-process, on loopback port 0, with a NIO echo server behind the `notes` tcp app.
final class TestDaemon: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let store = Fixtures.store()
    let daemon: USPDaemon
    let serviceGroup: ServiceGroup
    let echoChannel: any Channel
    var task: Task<Void, any Error>?
    var port4 = 0
    var port6: Int?
    /// What the daemon's apps.d loader returns; change it to see a reload.
    let applications: ApplicationsBox

    /// `backing`: the store the daemon uses (default: `store`, in memory).
    init(handshakeTimeout: Double = 1, idleTimeout: Double = 600, listen: [String] = ["127.0.0.1:0", "[::1]:0"],
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
        options.drainTimeout = 3
        options.reloadInterval = 0.2
        let runtime = ServerRuntime(options: options, staticKey: Fixtures.serverKey, policy: policy, logger: logger)
        let applications = ApplicationsBox(Fixtures.applications(tcpPort: echoPort))
        self.applications = applications
        daemon = USPDaemon(runtime: runtime, group: group, loadApplications: { [applications] in applications.withLock { $0 } })
        serviceGroup = ServiceGroup(configuration: .init(services: [daemon], logger: logger))
    }

    func start() async throws {
        let group = serviceGroup
        task = Task { try await group.run() }
        let addresses = try await daemon.boundAddresses()
        for a in addresses {
            if case .v4 = a { port4 = a.port! }
            if case .v6 = a { port6 = a.port! }
        }
    }

    func stop() async throws {
        await serviceGroup.triggerGracefulShutdown()
        _ = try? await task?.value
        try? await echoChannel.close()
        try await group.shutdownGracefully()
    }
}

/// Echoes every byte and half-closes when the peer does.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { context.close(mode: .output, promise: nil) }
    }
}

final class ApplicationsBox: Sendable {
    private let value: Mutex<[ApplicationDefinition]>
    init(_ v: [ApplicationDefinition]) { value = Mutex(v) }
    func withLock<R>(_ body: (inout [ApplicationDefinition]) -> R) -> R { value.withLock { body(&$0) } }
}
