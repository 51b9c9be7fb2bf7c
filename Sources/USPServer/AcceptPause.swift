import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Stops accepting for a while when accept fails for want of descriptors or memory (EMFILE,
/// ENFILE, ENOBUFS, ENOMEM). The pending connection stays in the kernel's backlog, so the
/// listening socket stays readable; without a pause the event loop would retry accept at once,
/// forever, at full CPU. The pause starts at 10 ms and doubles up to 500 ms while accepts keep
/// failing (so service resumes within half a second of descriptors coming back), and is forgotten
/// at the next accepted connection. Reading is paused by turning `autoRead` off, which also takes
/// the socket out of the event loop's interest set.
final class AcceptPause: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    static let firstPause: TimeAmount = .milliseconds(10)
    static let longestPause: TimeAmount = .milliseconds(500)

    private let logger: Logger
    private var nextPause = AcceptPause.firstPause
    private var paused = false
    /// Failed accepts since the last accepted connection (for the log line).
    private var failures = 0

    init(logger: Logger) {
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if failures > 0 {
            logger.notice("accepting again after \(failures) failed accept(s)")
            failures = 0
        }
        nextPause = Self.firstPause
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let io = error as? IOError, Self.isShortage(io.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        failures += 1
        guard !paused else { return }
        if failures == 1 {
            logger.warning("accept failed: \(String(cString: strerror(io.errnoCode))); pausing new connections (raise the descriptor limit, LimitNOFILE=, or lower max_connections)")
        }
        paused = true
        let pause = nextPause
        nextPause = .nanoseconds(min(pause.nanoseconds * 2, Self.longestPause.nanoseconds))
        let channel = context.channel
        channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        context.eventLoop.assumeIsolated().scheduleTask(in: pause) { [self] in
            paused = false
            channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        }
    }

    static func isShortage(_ code: CInt) -> Bool {
        code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
    }
}
