import NIOCore
import NIOPosix
import USPCore

/// `usp forward --udp`: a local UDP port for an application launched with `[launch] udp`.
///
/// One USP session carries every flow. A flow is one local client's address; it gets a stream of
/// its own (an application token requested on the session, then OPEN), and its datagrams travel
/// framed on that stream (docs/PROTOCOL.md §7.5). Nothing waits on the server: a flow's queue holds
/// at most `queueLimit` datagrams and drops the rest, as a full router queue would. A flow quiet
/// for `idleTimeout` seconds is closed (FIN); a lost session is reconnected at the next datagram.
public final class UDPForwarder: Sendable {
    public struct Counters: Sendable, Equatable {
        public var flowsOpened = 0
        public var datagramsOut = 0
        public var datagramsIn = 0
        public var dropped = 0
    }

    public let localAddress: SocketAddress
    private let channel: any Channel
    private let table: FlowTable
    private let incoming: AsyncStream<AddressedEnvelope<ByteBuffer>>

    /// Binds `host:port` (UDP; port 0 picks one: see `localAddress`).
    public init(listenHost: String, listenPort: Int, server: ServerURI, home: ClientHome, application: String,
                textFields: [String: String] = [:], options: USPConnectionOptions = USPConnectionOptions(),
                idleTimeout: Double = 60, queueLimit: Int = 64) async throws {
        let group = options.eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        let (incoming, sink) = AsyncStream<AddressedEnvelope<ByteBuffer>>.makeStream(bufferingPolicy: .bufferingOldest(4096))
        do {
            channel = try await DatagramBootstrap(group: group)
                .channelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(LocalSide(sink: sink)) }
                }
                .bind(host: listenHost, port: listenPort).get()
        } catch {
            throw USPClientError(.invalidArgument, "cannot listen on UDP \(listenHost):\(listenPort): \(error)")
        }
        guard let address = channel.localAddress else {
            channel.close(promise: nil)
            throw USPClientError(.invalidArgument, "cannot listen on UDP \(listenHost):\(listenPort): no local address")
        }
        localAddress = address
        self.incoming = incoming
        table = FlowTable(channel: channel, server: server, home: home, application: application, textFields: textFields,
                          options: options, idleTimeout: idleTimeout, queueLimit: queueLimit)
    }

    /// Forwards until `close()` (or the socket fails). `onError` hears about each flow that could
    /// not be opened or broke.
    public func run(onError: @escaping @Sendable (USPClientError) -> Void) async throws {
        await table.setErrorHandler(onError)
        let sweep = Task { [table] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int64(max(0.05, table.idleTimeout / 4) * 1000)))
                await table.closeIdleFlows()
            }
        }
        defer { sweep.cancel() }
        for await envelope in incoming {
            await table.datagram(envelope.data, from: envelope.remoteAddress)
        }
        await table.closeAll()
    }

    /// Stops listening and ends every flow.
    public func close() {
        channel.close(promise: nil)
    }

    public var counters: Counters {
        get async { await table.counters }
    }

    /// Local datagrams into the forwarder's queue (dropped beyond 4096 waiting).
    private final class LocalSide: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let sink: AsyncStream<AddressedEnvelope<ByteBuffer>>.Continuation
        init(sink: AsyncStream<AddressedEnvelope<ByteBuffer>>.Continuation) { self.sink = sink }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            sink.yield(unwrapInboundIn(data))
        }

        func channelInactive(context: ChannelHandlerContext) {
            sink.finish()
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // An ICMP error for an earlier reply to a local client that went away: carry on.
        }
    }
}

/// The flows of a `UDPForwarder` and the session they share.
actor FlowTable {
    struct Flow {
        let queue: AsyncStream<[UInt8]>.Continuation
        var lastActivity: ContinuousClock.Instant
    }

    let channel: any Channel
    let server: ServerURI
    let home: ClientHome
    let application: String
    let textFields: [String: String]
    let options: USPConnectionOptions
    nonisolated let idleTimeout: Double
    let queueLimit: Int
    private var connection: Task<USPConnection, any Error>?
    private var flows: [SocketAddress: Flow] = [:]
    private(set) var counters = UDPForwarder.Counters()
    private var onError: @Sendable (USPClientError) -> Void = { _ in }

    init(channel: any Channel, server: ServerURI, home: ClientHome, application: String, textFields: [String: String],
         options: USPConnectionOptions, idleTimeout: Double, queueLimit: Int) {
        self.channel = channel
        self.server = server
        self.home = home
        self.application = application
        self.textFields = textFields
        self.options = options
        self.idleTimeout = idleTimeout
        self.queueLimit = queueLimit
    }

    func setErrorHandler(_ handler: @escaping @Sendable (USPClientError) -> Void) { onError = handler }

    /// A datagram from a local client: into its flow's queue (a new flow for a new address).
    func datagram(_ data: ByteBuffer, from address: SocketAddress) {
        guard data.readableBytes <= DatagramFraming.maxPayload else { counters.dropped += 1; return }
        if flows[address] == nil { openFlow(address) }
        flows[address]!.lastActivity = .now
        switch flows[address]!.queue.yield(Array(data.readableBytesView)) {
        case .dropped: counters.dropped += 1
        default: counters.datagramsOut += 1
        }
    }

    private func openFlow(_ address: SocketAddress) {
        let (queue, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingOldest(queueLimit))
        flows[address] = Flow(queue: continuation, lastActivity: .now)
        counters.flowsOpened += 1
        Task { await self.carry(address, queue) }
    }

    /// One flow's life: a stream, its datagrams out, the answers back to `address`.
    private func carry(_ address: SocketAddress, _ queue: AsyncStream<[UInt8]>) async {
        do {
            let stream = try await openStream()
            let channel = self.channel
            let reader = Task {
                var reassembler = DatagramReassembler()
                for try await chunk in stream.inbound {
                    var replies: [ByteBuffer] = []
                    chunk.withUnsafeReadableBytes { bytes in
                        reassembler.feed(bytes) { replies.append(channel.allocator.buffer(bytes: $0)) }
                    }
                    for reply in replies {
                        channel.write(AddressedEnvelope(remoteAddress: address, data: reply), promise: nil)
                    }
                    channel.flush()
                    self.received(replies.count, for: address)
                }
            }
            var framed: [UInt8] = []
            for await payload in queue {
                framed.removeAll(keepingCapacity: true)
                payload.withUnsafeBytes { DatagramFraming.append($0, to: &framed) }
                try await stream.write(framed)
            }
            // Idle, or the forwarder is closing: FIN, then let the answers already under way in.
            try? await stream.finish()
            _ = await reader.result
        } catch let error as USPClientError {
            flowFailed(address, error)
        } catch {
            flowFailed(address, USPClientError(.connectionLost, "UDP flow from \(address): \(error)"))
        }
        if flows[address] != nil { flows[address]!.queue.finish(); flows[address] = nil }
    }

    private func received(_ count: Int, for address: SocketAddress) {
        counters.datagramsIn += count
        flows[address]?.lastActivity = .now
    }

    private func flowFailed(_ address: SocketAddress, _ error: USPClientError) {
        onError(error)
        // The session may be gone: the next flow connects again.
        if error.code == .connectionLost || error.code == .unreachable || error.code == .handshakeRejected { connection = nil }
    }

    /// The shared session, connected on first use and after it was lost.
    private func session() async throws -> USPConnection {
        if let connection { return try await connection.value }
        let (server, home, options) = (self.server, self.home, self.options)
        let task = Task {
            try await USPConnection.connectForMenu(to: server, home: home, options: options, useSavedLogin: !options.anonymous, notice: { _ in })
        }
        connection = task
        do {
            return try await task.value
        } catch {
            connection = nil
            throw error
        }
    }

    private func openStream() async throws -> USPStream {
        let c = try await session()
        do {
            let token = textFields.isEmpty ? try await c.requestApplication(name: application)
                                           : try await c.requestApplication(name: application, textFields: textFields)
            return try await c.openStream(token: token)
        } catch let e as USPClientError where e.code == .connectionLost {
            connection = nil
            throw e
        }
    }

    func closeIdleFlows() {
        let now = ContinuousClock.now
        for (address, flow) in flows where now - flow.lastActivity > .milliseconds(Int64(idleTimeout * 1000)) {
            flow.queue.finish()
            flows[address] = nil
        }
    }

    func closeAll() async {
        for flow in flows.values { flow.queue.finish() }
        flows = [:]
        if let connection, let c = try? await connection.value { await c.close() }
    }
}
