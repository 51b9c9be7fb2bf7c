import Glibc
import NIOCore
import Synchronization
import NIOPosix
import USPCore

/// `usp connect`'s data path when stdin and stdout are pipes, sockets or terminals: both become
/// one NIO pipe channel on the connection's own event loop, so a chunk read from stdin is sealed
/// and written to the server on the same thread, without a hop through another thread or task
/// (the reason `StdioBridge` costs about twice the CPU per byte). Regular files cannot be polled;
/// for them `StdioBridge` stays in use.
public enum StdioPipeBridge {

    /// Whether `fd` can go into an event loop (a FIFO, a socket or a terminal).
    public static func isPollable(_ fd: Int32) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        let type = st.st_mode & S_IFMT
        // Of the character devices only terminals: epoll refuses /dev/null and /dev/zero with
        // EPERM, which NIO does not survive; those go through the thread bridge.
        return type == S_IFIFO || type == S_IFSOCK || (type == S_IFCHR && isatty(fd) == 1)
    }

    /// Runs like `StdioBridge.run`: until the server's FIN has been written out (returns) or
    /// something fails (throws). `input` is stopped first and what it had read is sent before
    /// anything the channel reads. Returns false, having done nothing, if the descriptors cannot
    /// be used this way (the caller then uses `StdioBridge`).
    public static func run(stream: USPStream, input: FDReader, inputEnded: Bool,
                           inputFD: Int32 = STDIN_FILENO, outputFD: Int32 = STDOUT_FILENO) async throws -> Bool {
        guard isPollable(inputFD), isPollable(outputFD), let (buffered, atEnd) = input.stop() else { return false }
        // A write or FIN that fails means the stream is over (reset, connection lost): the
        // inbound side then throws that reason, after the bytes that arrived before it.
        for chunk in buffered { do { try await stream.write(chunk) } catch { break } }
        let inDup = dup(inputFD), outDup = dup(outputFD)
        guard inDup >= 0, outDup >= 0 else {
            if inDup >= 0 { close(inDup) }
            if outDup >= 0 { close(outDup) }
            throw USPClientError(.localFile, "cannot duplicate standard input/output: \(String(cString: strerror(errno)))")
        }
        let core = stream.core, streamCore = stream.stream
        let inputDone = inputEnded || atEnd
        let outcome = BridgeOutcome()
        let channel: any Channel
        do {
            channel = try await NIOPipeBootstrap(group: core.eventLoop)
                .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                .channelOption(ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 64 * 1024, maximum: 256 * 1024))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(StdinToStreamHandler(core: core, stream: streamCore, inputDone: inputDone, outcome: outcome))
                    }
                }
                .takingOwnershipOfDescriptors(input: inDup, output: outDup)
                .get()
        } catch {
            close(inDup)
            close(outDup)
            throw USPClientError(.localFile, "cannot use standard input/output: \(error)")
        }
        if inputDone { try? await stream.finish() }
        do {
            // The server's bytes go to stdout; its FIN ends the bridge, as in StdioBridge.
            for try await chunk in stream.inbound {
                try await channel.writeAndFlush(chunk)
            }
            if let failure = outcome.failure.withLock({ $0 }) { throw failure }
        } catch {
            try? await channel.close()
            throw (error as? USPClientError) ?? USPClientError(.localFile, "cannot write standard output: \(error)")
        }
        try? await channel.close()
        return true
    }
}

/// What the input side ran into, for the task that waits for the bridge.
final class BridgeOutcome: Sendable {
    let failure = Mutex<USPClientError?>(nil)
}

/// Reads stdin on the event loop and hands each chunk to the stream: reading pauses while more
/// than `highWater` bytes wait for the server's credit, and goes on below `lowWater`.
final class StdinToStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let core: ConnectionCore
    let stream: StreamCore
    private var inputDone: Bool
    private var outstanding = 0
    private var paused = false
    private var failed = false
    let outcome: BridgeOutcome
    static let highWater = 2 << 20
    static let lowWater = 512 << 10

    init(core: ConnectionCore, stream: StreamCore, inputDone: Bool, outcome: BridgeOutcome) {
        self.core = core
        self.stream = stream
        self.inputDone = inputDone
        self.outcome = outcome
    }

    func channelActive(context: ChannelHandlerContext) {
        // Input that already ended is not read again.
        if inputDone { try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !inputDone else { return }
        let buffer = unwrapInboundIn(data)
        let count = buffer.readableBytes
        outstanding += count
        let promise = context.eventLoop.makePromise(of: Void.self)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        promise.futureResult.whenComplete { result in
            let (me, context) = loopBound.value
            me.outstanding -= count
            if case .failure(let error) = result {
                if !me.failed {
                    me.failed = true
                    me.outcome.failure.withLock { $0 = (error as? USPClientError) ?? USPClientError(.connectionLost, "\(error)") }
                    me.stopReading(context)
                }
                return
            }
            if me.paused, me.outstanding < Self.lowWater {
                me.paused = false
                try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
                context.read()
            }
        }
        core.write(stream, buffer, promise: promise)
        if outstanding > Self.highWater, !paused {
            paused = true
            try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { endOfInput(context) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A read error on stdin ends the input like EOF; the stream is half-closed.
        endOfInput(context)
    }

    private func endOfInput(_ context: ChannelHandlerContext) {
        guard !inputDone else { return }
        inputDone = true
        stopReading(context)
        core.finish(stream, promise: context.eventLoop.makePromise(of: Void.self))
    }

    private func stopReading(_ context: ChannelHandlerContext) {
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
    }
}
