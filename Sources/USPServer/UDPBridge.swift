import Logging
import NIOCore
import NIOPosix
import USPCore
import USPNIO

/// A UDP application's stream (`[launch] udp`, docs/PROTOCOL.md §7.5). Each datagram the client
/// sends (framed on the stream) leaves a UDP socket of this stream's own towards the service; each
/// datagram the service sends back to that socket returns framed. Nothing waits: a datagram that
/// finds the socket busy, or the client's credit short, is dropped and counted, as a router
/// would drop it. Datagrams from any other address than the service's are ignored.
final class UDPBridge: ServerStreamApplication {
    let port: ServerStreamPort
    let logger: Logger
    let target: SocketAddress
    private var release: @Sendable () -> Void
    private var channel: (any Channel)?
    /// Datagrams that came before the socket was bound (at most `maxEarly`).
    private var early: [[UInt8]] = []
    private var reassembler = DatagramReassembler()
    private var closed = false
    /// Datagrams each way, and those dropped.
    private(set) var toService = 0, fromService = 0, dropped = 0
    static let maxEarly = 64

    init(port: ServerStreamPort, target: SocketAddress, logger: Logger, release: @escaping @Sendable () -> Void) {
        self.port = port
        self.target = target
        self.logger = logger
        self.release = release
    }

    /// Binds the stream's socket (an ephemeral port on the service's address family).
    func start(name: String) {
        let bound = NIOLoopBound(self, eventLoop: port.eventLoop)
        let local = target.protocol == .inet6 ? "::" : "0.0.0.0"
        DatagramBootstrap(group: port.eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ServiceSide(bridge: bound.value))
                }
            }
            .bind(host: local, port: 0)
            .assumeIsolated().whenComplete { result in
                let me = bound.value
                switch result {
                case .success(let channel): me.attach(channel)
                case .failure(let error):
                    me.logger.error("stream \(me.port.stream): \(name): cannot open a UDP socket: \(error) (application_unavailable)")
                    if !me.closed { me.port.reset(code: .applicationUnavailable) }
                }
            }
    }

    private func attach(_ channel: any Channel) {
        guard !closed else { channel.close(promise: nil); return }
        self.channel = channel
        for datagram in early { datagram.withUnsafeBytes { send($0) } }
        early = []
        channel.flush()
    }

    // MARK: client → service

    func received(_ data: ByteBuffer) {
        guard !closed else { return }
        data.withUnsafeReadableBytes { bytes in
            var reassembler = self.reassembler
            reassembler.feed(bytes) { send($0) }
            self.reassembler = reassembler
        }
        // Datagrams are never held for the client's sake: its credit comes back at once.
        port.consumed(data.readableBytes)
    }

    private func send(_ payload: UnsafeRawBufferPointer) {
        guard let channel else {
            if early.count < Self.maxEarly { early.append(Array(payload)) } else { dropped += 1 }
            return
        }
        guard channel.isWritable else { dropped += 1; return }
        toService += 1
        let envelope = AddressedEnvelope(remoteAddress: target, data: channel.allocator.buffer(bytes: payload))
        channel.write(envelope, promise: nil)
    }

    func receivedBatchEnded() { channel?.flush() }

    func clientFinished() {
        // No more datagrams from the client: the flow is over.
        port.finish()
        stop()
    }

    // MARK: service → client

    /// The service's datagrams of one read burst, framed, sent together at its end.
    private var replies = ByteBuffer()
    private var replyEnds: [Int] = []

    fileprivate func serviceSent(_ envelope: AddressedEnvelope<ByteBuffer>) {
        guard !closed, envelope.remoteAddress == target else { return }
        let payload = envelope.data
        guard payload.readableBytes <= DatagramFraming.maxPayload else { dropped += 1; return }
        replies.writeInteger(UInt16(payload.readableBytes))
        replies.writeImmutableBuffer(payload)
        replyEnds.append(replies.writerIndex)
    }

    /// Sends the whole datagrams the client's credit allows (one write: as few records as the
    /// bytes need) and drops the rest.
    fileprivate func serviceReadEnded() {
        guard !closed, !replyEnds.isEmpty else { return }
        let room = port.sendableBytes
        let fit = replyEnds.lastIndex { $0 <= room }.map { replyEnds[$0] } ?? 0
        let sent = replyEnds.filter { $0 <= fit }.count
        dropped += replyEnds.count - sent
        fromService += sent
        if fit > 0 {
            var buffer = replies.getSlice(at: replies.readerIndex, length: fit)!
            port.write(&buffer)
        }
        replies.clear()
        replyEnds.removeAll(keepingCapacity: true)
    }

    func writable() {}

    func closed(code: USPError.Code) { stop() }

    private func stop() {
        guard !closed else { return }
        closed = true
        if dropped > 0 {
            logger.info("stream \(port.stream): UDP flow ended: \(toService) datagrams sent, \(fromService) received, \(dropped) dropped")
        }
        channel?.close(promise: nil)
        channel = nil
        early = []
        let r = release
        release = {}
        r()
    }

    /// The service's side of the socket: datagrams in, errors (an ICMP port unreachable) logged.
    private final class ServiceSide: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let bridge: UDPBridge
        init(bridge: UDPBridge) { self.bridge = bridge }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            bridge.serviceSent(unwrapInboundIn(data))
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            bridge.serviceReadEnded()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // ECONNREFUSED from an earlier datagram and the like: UDP carries on.
            bridge.dropped += 1
        }
    }
}
