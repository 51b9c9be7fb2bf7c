import NIOCore
import NIOPosix
import USPCore
import USPNIO

/// One client's session as an application sees it: what uspd said about it, and the stream.
///
/// `channel` reads the client's bytes and writes to the client. Finishing its outbound side
/// (`outbound.finish()`) half-closes: the client sees end of file while the inbound side goes on.
/// The inbound sequence ends when the client half-closes.
public struct ApplicationSession: Sendable {
    public let metadata: SessionMetadata
    public let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>

    public init(metadata: SessionMetadata, channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>) {
        self.metadata = metadata
        self.channel = channel
    }

    /// Wraps `descriptor`, a connected stream socket the channel then owns, on `group`.
    public static func make(metadata: SessionMetadata, descriptor: CInt,
                            group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> ApplicationSession {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .withConnectedSocket(descriptor) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
        return ApplicationSession(metadata: metadata, channel: channel)
    }

    /// Wraps `socket`, the client's TCP connection from a relay-free hand-off, with `session`
    /// resumed on it (`DedicatedStreamHandler`): the channel reads and writes the stream's bytes
    /// exactly like a relayed session's.
    /// `control`, if given, is the hand-off's control connection (§14.2): a `reset <code>` line
    /// from uspd resets the stream with that code and ends the session; it is closed with the session.
    public static func make(metadata: SessionMetadata, relayFreeSocket socket: CInt, session: DedicatedStreamSession,
                            control: CInt? = nil,
                            group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> ApplicationSession {
        let (channel, handler) = try await ClientBootstrap(group: group)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .withConnectedSocket(socket) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = DedicatedStreamHandler(session: session)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    return (try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true)),
                            NIOLoopBound(handler, eventLoop: channel.eventLoop))
                }
            }
        if let control {
            do {
                try await ControlLine.watch(control, for: channel.channel, on: handler)
            } catch {
                // The session itself is fine; only revocation will not reach it.
                close(control)
            }
        }
        return ApplicationSession(metadata: metadata, channel: channel)
    }

    /// The session of a hand-off, relayed or relay-free.
    static func make(_ handoff: HandoffReceiver.Handoff, group: any EventLoopGroup) async throws -> ApplicationSession {
        if let session = handoff.relayFree {
            return try await make(metadata: handoff.metadata, relayFreeSocket: handoff.descriptor, session: session,
                                  control: handoff.control, group: group)
        }
        return try await make(metadata: handoff.metadata, descriptor: handoff.descriptor, group: group)
    }
}
