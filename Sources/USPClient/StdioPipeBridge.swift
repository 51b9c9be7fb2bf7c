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
        let channel: any Channel
        do {
            channel = try await NIOPipeBootstrap(group: stream.core.eventLoop)
                .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                .channelOption(ChannelOptions.autoRead, value: false)
                .channelOption(ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 64 * 1024, maximum: 256 * 1024))
                .takingOwnershipOfDescriptors(input: inDup, output: outDup)
                .get()
        } catch {
            close(inDup)
            close(outDup)
            throw USPClientError(.localFile, "cannot use standard input/output: \(error)")
        }
        try await LocalChannelBridge.run(stream: stream, channel: channel, inputDone: inputEnded || atEnd, afterServerFIN: .close)
        return true
    }
}

/// Bridges a local byte channel (stdin/stdout as a pipe channel, a connection accepted by
/// `usp forward`) and a stream whose connection lives on the channel's own event loop: a chunk
/// read locally is sealed and written to the server on the same thread, without a hop through
/// another thread or task.
enum LocalChannelBridge {
    /// What to do with the local channel once the server's FIN has been written out to it.
    enum AfterServerFIN {
        /// Close it (`usp connect`: the session is over).
        case close
        /// Half-close its output and go on reading its input until that ends (`usp forward`: the
        /// local peer may still be sending).
        case halfClose
    }

    /// Runs until the server's FIN has been written out (and, with `.halfClose`, the local input
    /// has ended too), or throws when something fails; the channel is closed either way. The
    /// channel must be on `stream.core.eventLoop`, with autoRead off and no handlers yet.
    static func run(stream: USPStream, channel: any Channel, inputDone: Bool, afterServerFIN: AfterServerFIN) async throws {
        let core = stream.core, streamCore = stream.stream
        let outcome = BridgeOutcome()
        let inputEnded = channel.eventLoop.makePromise(of: Void.self)
        do {
            try await channel.eventLoop.submit {
                let handler = LocalToStreamHandler(core: core, stream: streamCore, inputDone: inputDone, outcome: outcome, ended: inputEnded)
                if let pending = try? channel.pipeline.syncOperations.handler(type: PendingInput.self) {
                    // What arrived before the stream was open goes first.
                    try channel.pipeline.syncOperations.addHandler(handler, position: .after(pending))
                    pending.release()
                } else {
                    try channel.pipeline.syncOperations.addHandler(handler)
                    if !inputDone {
                        try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
                        channel.read()
                    }
                }
            }.get()
        } catch {
            inputEnded.succeed()
            try? await channel.close()
            throw USPClientError(.localFile, "cannot read the local side: \(error)")
        }
        if inputDone {
            inputEnded.succeed()
            try? await stream.finish()
        }
        do {
            // The server's bytes go out locally; its FIN ends this direction.
            for try await chunk in stream.inbound {
                try await channel.writeAndFlush(chunk)
            }
            if let failure = outcome.failure.withLock({ $0 }) { throw failure }
            if case .halfClose = afterServerFIN {
                try? await channel.close(mode: .output)
                try? await inputEnded.futureResult.get()
                if let failure = outcome.failure.withLock({ $0 }) { throw failure }
            }
        } catch {
            inputEnded.succeed()
            try? await channel.close()
            throw (error as? USPClientError) ?? USPClientError(.localFile, "cannot write locally: \(error)")
        }
        try? await channel.close()
    }
}

/// Holds what a local connection sends before its stream is open (reading stays on: a channel
/// whose reads start paused can miss data that arrived meanwhile), then hands it on and leaves.
/// Past `limit` bytes it pauses reading; the bridge's handler resumes it.
final class PendingInput: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private var held: [ByteBuffer] = []
    private var heldBytes = 0
    private var events: [Any] = []
    private var context: ChannelHandlerContext?
    static let limit = 1 << 20

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        heldBytes += buffer.readableBytes
        held.append(buffer)
        if heldBytes > Self.limit { try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        events.append(event)
    }

    /// Passes on what it held, in order, then removes itself (on the channel's loop).
    func release() {
        guard let context else { return }
        for buffer in held { context.fireChannelRead(wrapInboundOut(buffer)) }
        held = []
        for event in events { context.fireUserInboundEventTriggered(event) }
        events = []
        if heldBytes > Self.limit { try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// What the input side ran into, for the task that waits for the bridge.
final class BridgeOutcome: Sendable {
    let failure = Mutex<USPClientError?>(nil)
}

/// Reads stdin on the event loop and hands each chunk to the stream: reading pauses while more
/// than `highWater` bytes wait for the server's credit, and goes on below `lowWater`.
final class LocalToStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let core: ConnectionCore
    let stream: StreamCore
    private var inputDone: Bool
    private var outstanding = 0
    private var paused = false
    private var failed = false
    let outcome: BridgeOutcome
    /// Succeeded when the local input has ended (end of file, a read error, or a failed write).
    let ended: EventLoopPromise<Void>
    static let highWater = 2 << 20
    static let lowWater = 512 << 10

    init(core: ConnectionCore, stream: StreamCore, inputDone: Bool, outcome: BridgeOutcome, ended: EventLoopPromise<Void>) {
        self.core = core
        self.stream = stream
        self.inputDone = inputDone
        self.outcome = outcome
        self.ended = ended
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
                    me.ended.succeed()
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

    func channelInactive(context: ChannelHandlerContext) {
        // A peer that closes once its output was half-closed here ends the channel without an
        // inputClosed event first.
        endOfInput(context)
        context.fireChannelInactive()
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
        ended.succeed()
    }

    private func stopReading(_ context: ChannelHandlerContext) {
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
    }
}
