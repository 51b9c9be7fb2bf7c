import NIOCore
import NIOPosix
import Synchronization
import USPCore
import USPNIO

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
    private let incoming: AsyncStream<[AddressedEnvelope<ByteBuffer>]>

    /// Binds `host:port` (UDP; port 0 picks one: see `localAddress`).
    public init(listenHost: String, listenPort: Int, server: ServerURI, home: ClientHome, application: String,
                textFields: [String: String] = [:], options: USPConnectionOptions = USPConnectionOptions(),
                idleTimeout: Double = 60, queueLimit: Int = 64) async throws {
        let group = options.eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        let (incoming, sink) = AsyncStream<[AddressedEnvelope<ByteBuffer>]>.makeStream(bufferingPolicy: .bufferingOldest(1024))
        do {
            channel = try await DatagramBootstrap(group: group)
                .channelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(LocalSide(sink: sink)) }
                }
                .bind(host: listenHost, port: listenPort).get()
        } catch {
            throw USPClientError(.invalidArgument, "cannot listen on UDP \(listenHost):\(listenPort): \(SocketErrorText.describe(error))")
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
        for await batch in incoming {
            await table.datagrams(batch)
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

    /// Local datagrams into the forwarder, one batch per read burst (at most 1024 batches wait;
    /// beyond that they are dropped).
    private final class LocalSide: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let sink: AsyncStream<[AddressedEnvelope<ByteBuffer>]>.Continuation
        private var batch: [AddressedEnvelope<ByteBuffer>] = []
        init(sink: AsyncStream<[AddressedEnvelope<ByteBuffer>]>.Continuation) { self.sink = sink }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            batch.append(unwrapInboundIn(data))
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            guard !batch.isEmpty else { return }
            sink.yield(batch)
            batch = []
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
/// A flow's datagrams on their way to the server: at most `limit` wait, more are dropped; the
/// writer takes all that wait at once.
final class DatagramQueue: Sendable {
    private struct State {
        var items: [[UInt8]] = []
        var waiter: CheckedContinuation<[[UInt8]]?, Never>?
        var finished = false
    }

    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = limit }

    /// Queues `datagram`; false if it was dropped (the queue is full or finished).
    func push(_ datagram: [UInt8]) -> Bool {
        let (accepted, handOver) = state.withLock { s -> (Bool, (CheckedContinuation<[[UInt8]]?, Never>, [[UInt8]])?) in
            guard !s.finished, s.items.count < limit else { return (false, nil) }
            s.items.append(datagram)
            guard let waiter = s.waiter else { return (true, nil) }
            s.waiter = nil
            defer { s.items = [] }
            return (true, (waiter, s.items))
        }
        if let (waiter, items) = handOver { waiter.resume(returning: items) }
        return accepted
    }

    /// Ends the queue: the writer gets what waits, then nil.
    func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<[[UInt8]]?, Never>? in
            s.finished = true
            defer { s.waiter = nil }
            return s.items.isEmpty ? s.waiter : nil
        }
        waiter?.resume(returning: nil)
    }

    /// Everything waiting (at least one datagram), or nil once finished and empty.
    func next() async -> [[UInt8]]? {
        await withCheckedContinuation { (c: CheckedContinuation<[[UInt8]]?, Never>) in
            let ready = state.withLock { s -> [[UInt8]]?? in
                if !s.items.isEmpty { defer { s.items = [] }; return .some(s.items) }
                if s.finished { return .some(nil) }
                s.waiter = c
                return .none
            }
            if let ready { c.resume(returning: ready) }
        }
    }
}

actor FlowTable {
    struct Flow {
        let queue: DatagramQueue
        var lastActivity: ContinuousClock.Instant
    }

    let channel: any Channel
    nonisolated let idleTimeout: Double
    let queueLimit: Int
    let session: ForwardSession
    private var flows: [SocketAddress: Flow] = [:]
    private(set) var counters = UDPForwarder.Counters()
    private var onError: @Sendable (USPClientError) -> Void = { _ in }

    init(channel: any Channel, server: ServerURI, home: ClientHome, application: String, textFields: [String: String],
         options: USPConnectionOptions, idleTimeout: Double, queueLimit: Int) {
        self.channel = channel
        self.idleTimeout = idleTimeout
        self.queueLimit = queueLimit
        session = ForwardSession(server: server, home: home, application: application, textFields: textFields, options: options)
    }

    func setErrorHandler(_ handler: @escaping @Sendable (USPClientError) -> Void) { onError = handler }

    /// Datagrams from local clients: each into its flow's queue (a new flow for a new address).
    func datagrams(_ batch: [AddressedEnvelope<ByteBuffer>]) {
        let now = ContinuousClock.now
        for envelope in batch {
            let address = envelope.remoteAddress
            guard envelope.data.readableBytes <= DatagramFraming.maxPayload else { counters.dropped += 1; continue }
            if flows[address] == nil { openFlow(address) }
            flows[address]!.lastActivity = now
            if flows[address]!.queue.push(Array(envelope.data.readableBytesView)) {
                counters.datagramsOut += 1
            } else {
                counters.dropped += 1
            }
        }
    }

    private func openFlow(_ address: SocketAddress) {
        let queue = DatagramQueue(limit: queueLimit)
        flows[address] = Flow(queue: queue, lastActivity: .now)
        counters.flowsOpened += 1
        Task { await self.carry(address, queue) }
    }

    /// One flow's life: a stream, its datagrams out, the answers back to `address`.
    private func carry(_ address: SocketAddress, _ queue: DatagramQueue) async {
        do {
            let stream = try await session.openStream()
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
            // Every datagram waiting goes in one write: as few records and event-loop hops as the
            // bytes need.
            var framed: [UInt8] = []
            while let payloads = await queue.next() {
                framed.removeAll(keepingCapacity: true)
                for payload in payloads { payload.withUnsafeBytes { DatagramFraming.append($0, to: &framed) } }
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
        queue.finish()
        if flows[address]?.queue === queue { flows[address] = nil }
    }

    private func received(_ count: Int, for address: SocketAddress) {
        counters.datagramsIn += count
        flows[address]?.lastActivity = .now
    }

    private func flowFailed(_ address: SocketAddress, _ error: USPClientError) {
        onError(error)
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
        await session.close()
    }
}
