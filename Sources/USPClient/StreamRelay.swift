import NIOCore
import NIOPosix
import Synchronization

/// Bytes that crossed a relay in each direction, counted as they go; readable from any thread.
public final class RelayCounters: Sendable {
    private let sent = Atomic<Int>(0)
    private let received = Atomic<Int>(0)

    public init() {}

    /// Bytes the local side sent towards the server.
    public var bytesSent: Int { sent.load(ordering: .relaxed) }
    /// Bytes the server sent towards the local side.
    public var bytesReceived: Int { received.load(ordering: .relaxed) }

    func addSent(_ n: Int) { sent.add(n, ordering: .relaxed) }
    func addReceived(_ n: Int) { received.add(n, ordering: .relaxed) }
}

/// Copies between a local byte channel (a TCP connection of `usp forward`, the agent's end of a
/// program's socketpair) and something else, both ways, with half-close: the end of one side's
/// input becomes a FIN on the other side, and the copy ends when both directions have ended.
public enum StreamRelay {
    /// Relays `inbound`/`outbound` (a local channel) and `stream`; returns after both FINs and
    /// once the stream's connection has closed. Throws (after which the caller closes both) if
    /// either side fails.
    public static func run(inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
                           stream: USPStream, counters: RelayCounters = RelayCounters()) async throws {
        try await both(
            { try await pump(inbound, count: counters.addSent, write: { try await stream.write($0) }, finish: { try await stream.finish() }) },
            { try await pump(stream.inbound, count: counters.addReceived, write: { try await outbound.write($0) }, finish: { outbound.finish() }) })
        await stream.waitUntilClosed()
    }

    /// Relays two local channels (`usp forward` through the agent: a TCP connection and the
    /// descriptor the agent handed over).
    public static func run(inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
                           otherInbound: NIOAsyncChannelInboundStream<ByteBuffer>, otherOutbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
                           counters: RelayCounters = RelayCounters()) async throws {
        try await both(
            { try await pump(inbound, count: counters.addSent, write: { try await otherOutbound.write($0) }, finish: { otherOutbound.finish() }) },
            { try await pump(otherInbound, count: counters.addReceived, write: { try await outbound.write($0) }, finish: { outbound.finish() }) })
    }

    /// A connected stream socket (a socketpair end, a descriptor from the agent) as a channel
    /// with half-close, on `eventLoop`. The channel owns `fd` from then on (also on failure).
    public static func channel(adopting fd: CInt, on eventLoop: any EventLoop) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: eventLoop)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .withConnectedSocket(fd) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel,
                                                                configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
    }

    /// One direction: every chunk of `source` through `write`, then `finish`.
    static func pump<Source: AsyncSequence & Sendable>(_ source: Source, count: @Sendable (Int) -> Void,
                                                      write: @Sendable (ByteBuffer) async throws -> Void,
                                                      finish: @Sendable () async throws -> Void) async throws where Source.Element == ByteBuffer {
        for try await chunk in source {
            count(chunk.readableBytes)
            try await write(chunk)
        }
        try await finish()
    }

    private static func both(_ one: @escaping @Sendable () async throws -> Void, _ other: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask(operation: one)
            group.addTask(operation: other)
            try await group.waitForAll()
        }
    }
}
