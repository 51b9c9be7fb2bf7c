import NIOCore
import NIOPosix
import USPCore
import USPNIO

#if canImport(Glibc)
import Glibc
#endif

/// A relay-free session's control line (docs/PROTOCOL.md §14.2): the hand-off connection, kept
/// open after `ok`. uspd writes `reset <code>\n` when the session's application token or its login
/// is revoked; the session then resets its stream with that code and ends. End of file (uspd
/// restarted) changes nothing. The line is closed when the session's channel closes, which tells
/// uspd the session is over.
enum ControlLine {
    static func watch(_ fd: CInt, for data: any Channel, on handler: NIOLoopBound<DedicatedStreamHandler>) async throws {
        let control: any Channel = try await ClientBootstrap(group: data.eventLoop)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ControlLineHandler { code in handler.value.revokedByDaemon(code: code) })
                }
            }
            .withConnectedSocket(fd)
            .get()
        data.closeFuture.whenComplete { _ in control.close(promise: nil) }
    }
}

/// Reads `reset <code>` lines; anything else is ignored (a later version may add commands).
final class ControlLineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var line: [UInt8] = []
    private let onReset: (USPError.Code) -> Void

    init(onReset: @escaping (USPError.Code) -> Void) { self.onReset = onReset }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        for byte in unwrapInboundIn(data).readableBytesView {
            guard byte != UInt8(ascii: "\n") else {
                let text = String(decoding: line, as: UTF8.self)
                line.removeAll()
                if text.hasPrefix("reset ") {
                    let name = String(text.dropFirst("reset ".count))
                    onReset(USPError.Code.fromName(name) ?? .tokenRevoked)
                }
                continue
            }
            if line.count < 256 { line.append(byte) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // uspd went away (restart): the session goes on; stop listening.
        if case ChannelEvent.inputClosed = event { context.close(promise: nil); return }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
