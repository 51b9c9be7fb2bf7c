import Foundation
import Logging
import NIOCore
import NIOPosix
import USPCore
import USPNIO
import USPUnix

#if canImport(Glibc)
import Glibc
#endif

/// Moves bytes between a stream and an application channel (a TCP connection or a process's pipes).
class ChannelBridge: ServerStreamApplication {
    let port: ServerStreamPort
    let logger: Logger
    private var release: @Sendable () -> Void
    private var channel: (any Channel)?
    /// Client bytes that arrived before the channel was ready.
    private var early: [ByteBuffer] = []
    /// Those bytes in one array (for a relay-free hand-off, which takes them along).
    var earlyBytes: [UInt8] { early.flatMap { Array($0.readableBytesView) } }
    private var clientDone = false
    /// Application bytes the client's credit did not allow yet.
    private var unsent: ByteBuffer?
    private var applicationDone = false
    private(set) var closed = false

    init(port: ServerStreamPort, logger: Logger, release: @escaping @Sendable () -> Void) {
        self.port = port
        self.logger = logger
        self.release = release
    }

    /// The stream's place under its application's cap, which `closed` would give back, for the
    /// caller to give back later (a relay-free session holds it until its control line closes).
    func takeRelease() -> @Sendable () -> Void {
        let taken = release
        release = {}
        return taken
    }

    func attach(_ channel: any Channel) {
        guard !closed else { channel.close(promise: nil); return }
        self.channel = channel
        for buffer in early { forward(buffer) }
        early = []
        channel.flush()
        if clientDone { channel.close(mode: .output, promise: nil) }
    }

    /// The application could not be started or reached: one log line, and the stream is reset
    /// with `code`, which the client sees.
    func failedToStart(_ reason: String, code: USPError.Code = .applicationUnavailable) {
        logger.error("stream \(port.stream): \(reason) (\(code.name))")
        guard !closed else { return }
        port.reset(code: code)
    }

    /// `failedToStart` on the next turn of the event loop, for failures found while the stream is
    /// still being opened (the session handler registers the bridge first).
    func failSoon(_ reason: String, code: USPError.Code) {
        let me = NIOLoopBound(self, eventLoop: port.eventLoop)
        port.eventLoop.execute { me.value.failedToStart(reason, code: code) }
    }

    /// Channel initializer that puts this bridge behind the application's channel.
    func initializer() -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        let bound = NIOLoopBound(self, eventLoop: port.eventLoop)
        return { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ApplicationSideHandler(bridge: bound.value))
            }
        }
    }

    /// Attaches once `future` (a bootstrap's channel) is there; `what` names it in the failure line.
    func attach(when future: EventLoopFuture<any Channel>, what: @escaping () -> String) {
        let me = NIOLoopBound(self, eventLoop: port.eventLoop)
        future.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel): me.value.attach(channel)
            case .failure(let error): me.value.failedToStart("\(what()): \(error)")
            }
        }
    }

    /// Relays through `socket`, the daemon's end of a connected AF_UNIX socketpair, which the
    /// channel then owns: shutdown(SHUT_WR) at the other end is a FIN to the client, a FIN from
    /// the client is shutdown(SHUT_WR) here.
    func attachSocket(_ socket: CInt, what: @escaping () -> String) {
        let future = ClientBootstrap(group: port.eventLoop)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelInitializer(initializer())
            .withConnectedSocket(socket)
        attach(when: future, what: what)
    }

    // MARK: client → application

    func received(_ data: ByteBuffer) {
        guard !closed else { return }
        if channel == nil { early.append(data) } else { forward(data) }
    }

    private func forward(_ data: ByteBuffer) {
        guard let channel else { return }
        let count = data.readableBytes
        let port = self.port
        // Credit goes back to the client only once the application accepted the bytes.
        // The flush comes at the end of the batch (`receivedBatchEnded`): one writev for its records.
        channel.write(data).assumeIsolated().whenComplete { _ in port.consumed(count) }
    }

    func receivedBatchEnded() {
        channel?.flush()
    }

    func clientFinished() {
        clientDone = true
        channel?.close(mode: .output, promise: nil)
    }

    // MARK: application → client

    func applicationRead(_ data: ByteBuffer) {
        guard !closed else { return }
        if unsent != nil {
            unsent!.writeImmutableBuffer(data)
        } else {
            var buffer = data
            port.write(&buffer)
            if buffer.readableBytes > 0 { unsent = buffer }
        }
        if unsent != nil { channel?.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in } }
    }

    func writable() {
        guard !closed, var buffer = unsent else { return }
        port.write(&buffer)
        if buffer.readableBytes > 0 { unsent = buffer; return }
        unsent = nil
        if applicationDone { applicationOutputDelivered() } else {
            channel?.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        }
    }

    /// The application sent everything (EOF on its output).
    func applicationFinished() {
        guard !applicationDone else { return }
        applicationDone = true
        if unsent == nil, !closed { applicationOutputDelivered() }
    }

    /// Everything the application wrote went to the client: the stream's direction to the
    /// client ends (FIN). `ExecBridge` first learns how the process ended.
    func applicationOutputDelivered() {
        port.finish()
    }

    func closed(code: USPError.Code) {
        guard !closed else { return }
        closed = true
        early = []
        unsent = nil
        channel?.close(promise: nil)
        release()
        stopped(code: code)
    }

    /// Subclasses stop what they started.
    func stopped(code: USPError.Code) {}
}

/// The application side of a bridge: forwards reads and EOF to the bridge.
final class ApplicationSideHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let bridge: ChannelBridge

    init(bridge: ChannelBridge) { self.bridge = bridge }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bridge.applicationRead(unwrapInboundIn(data))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { bridge.applicationFinished() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        bridge.applicationFinished()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        bridge.logger.debug("application channel: \(error)")
        context.close(promise: nil)
    }
}

extension UnixError {
    /// The stream code of a launch that failed with this error: out of descriptors is
    /// `resources_exhausted`, everything else `application_unavailable`.
    var streamCode: USPError.Code {
        code == .descriptorsExhausted ? .resourcesExhausted : .applicationUnavailable
    }
}
