import Dispatch
import FoundationEssentials
import Glibc
import NIOCore
import NIOPosix
import USPCore
import USPNIO

/// Reads a file descriptor (stdin) on its own thread, so the first bytes are already waiting
/// when the dedicated connection is opened and can ride in message 1. Holds at most
/// `bufferLimit` bytes: beyond that the thread stops reading (backpressure to the writer).
public final class FDReader: @unchecked Sendable {
    private let fd: Int32
    private let bufferLimit: Int
    private let condition = ConditionLock()
    private var chunks: [[UInt8]] = []
    private var queued = 0
    private var atEnd = false
    private var failure: String?
    private var waiter: CheckedContinuation<Void, Never>?
    private var started = false

    private var stopping = false
    private let wake: (read: Int32, write: Int32)
    private let exited = DispatchSemaphore(value: 0)

    public init(fd: Int32 = STDIN_FILENO, bufferLimit: Int = 1 << 20) {
        self.fd = fd
        self.bufferLimit = bufferLimit
        var p: [Int32] = [-1, -1]
        if pipe(&p) == 0 {
            _ = fcntl(p[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(p[1], F_SETFD, FD_CLOEXEC)
        } else {
            p = [-1, -1]
        }
        wake = (p[0], p[1])
    }

    deinit {
        if wake.read >= 0 { close(wake.read) }
        if wake.write >= 0 { close(wake.write) }
    }

    /// Stops the reading thread without losing a byte: returns what it had read and not handed
    /// out, and whether input had ended. Afterwards the descriptor is free for another reader.
    /// Nil when it cannot be stopped safely (no wake-up pipe); keep using `next()` then.
    public func stop() -> (chunks: [[UInt8]], atEnd: Bool)? {
        guard wake.write >= 0 else { return nil }
        condition.lock()
        let wasStarted = started
        stopping = true
        condition.broadcast()
        condition.unlock()
        if wasStarted {
            var one: UInt8 = 1
            _ = Glibc.write(wake.write, &one, 1)
            exited.wait()
        }
        condition.lock()
        defer { condition.unlock() }
        let out = chunks
        chunks.removeAll()
        queued = 0
        return (out, atEnd && failure == nil)
    }

    public func start() {
        condition.lock()
        defer { condition.unlock() }
        guard !started else { return }
        started = true
        PosixThread.detach(name: "usp-stdin") { [self] in loop() }
    }

    private func loop() {
        defer { exited.signal() }
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            condition.lock()
            while queued >= bufferLimit, !stopping { condition.wait() }
            let stop = stopping
            condition.unlock()
            if stop { return }
            // Wait for input or for stop(), so that stop() never leaves a read pending that
            // would take bytes meant for whoever reads the descriptor next.
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, -1)
            if ready < 0, errno == EINTR { continue }
            if fds[1].revents != 0 { return }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            let error = n < 0 ? String(cString: strerror(errno)) : nil
            condition.lock()
            if n > 0 {
                chunks.append(Array(buffer[0..<n]))
                queued += n
            } else {
                atEnd = true
                failure = error
            }
            let w = waiter
            waiter = nil
            condition.broadcast()
            condition.unlock()
            w?.resume()
            if n <= 0 { return }
        }
    }

    private enum Take { case chunk([UInt8]), end, failed(String), empty }

    private func take(upTo limit: Int) -> Take {
        if let first = chunks.first {
            if first.count <= limit {
                chunks.removeFirst()
                queued -= first.count
                condition.broadcast()
                return .chunk(first)
            }
            chunks[0] = Array(first[limit...])
            queued -= limit
            condition.broadcast()
            return .chunk(Array(first[..<limit]))
        }
        if atEnd { return failure.map(Take.failed) ?? .end }
        return .empty
    }

    private func lockedTake() -> Take {
        condition.lock()
        defer { condition.unlock() }
        return take(upTo: .max)
    }

    /// The next chunk, or nil at end of input. Cancellation ends the wait with CancellationError.
    public func next() async throws -> [UInt8]? {
        while true {
            try Task.checkCancellation()
            switch lockedTake() {
            case .chunk(let c): return c
            case .end: return nil
            case .failed(let e): throw USPClientError(.localFile, "cannot read standard input: \(e)")
            case .empty: break
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    condition.lock()
                    if !chunks.isEmpty || atEnd || Task.isCancelled {
                        condition.unlock()
                        c.resume()
                        return
                    }
                    waiter = c
                    condition.unlock()
                }
            } onCancel: {
                condition.lock()
                let w = waiter
                waiter = nil
                condition.unlock()
                w?.resume()
            }
        }
    }

    /// What has arrived, up to `limit` bytes; if nothing has, waits at most `wait` for the first
    /// bytes (bounded, so an idle stdin never delays the connection by more than that).
    /// `atEnd` is true if input ended and everything was taken.
    public func takeAvailable(upTo limit: Int, waitingAtMost wait: Duration) -> (bytes: [UInt8], atEnd: Bool) {
        let seconds = Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18
        let deadline = Date(timeIntervalSinceNow: seconds).timeIntervalSince1970
        condition.lock()
        defer { condition.unlock() }
        while chunks.isEmpty, !atEnd, Date().timeIntervalSince1970 < deadline {
            condition.wait(untilEpochSeconds: deadline)
        }
        var out: [UInt8] = []
        while out.count < limit, case .chunk(let c) = take(upTo: limit - out.count) { out += c }
        return (out, chunks.isEmpty && atEnd && failure == nil)
    }
}

/// Copies between a USP stream and file descriptors (stdin/stdout): the `usp connect` bridge,
/// usable as ssh's ProxyCommand.
public enum StdioBridge {
    /// Runs until the server finishes the stream (its FIN: returns normally) or something fails
    /// (throws). End of input sends FIN and keeps reading. Input is read by `input`, which may
    /// already hold bytes; the caller exits the process afterwards (the input thread may still
    /// be blocked in read).
    public static func run(stream: USPStream, input: FDReader, inputEnded: Bool = false, output: Int32 = STDOUT_FILENO) async throws {
        let (results, sink) = AsyncStream.makeStream(of: Result<Void, any Error>.self)
        let reader = Task {
            do {
                for try await chunk in stream.inbound {
                    try chunk.withUnsafeReadableBytes { try writeAll(output, $0) }
                }
                sink.yield(.success(()))
            } catch {
                sink.yield(.failure(error))
            }
        }
        let writer = Task {
            do {
                if !inputEnded {
                    while let chunk = try await input.next() {
                        // The stream is over (reset, connection lost): the reader reports why,
                        // after writing out what arrived before.
                        do { try await stream.write(chunk) } catch { return }
                    }
                }
                try? await stream.finish()
            } catch is CancellationError {
            } catch {
                sink.yield(.failure(error))
            }
        }
        defer {
            reader.cancel()
            writer.cancel()
        }
        for await result in results {
            try result.get()
            return
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE { throw USPClientError(.localFile, "standard output was closed") }
                throw USPClientError(.localFile, "cannot write standard output: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }
}

/// `usp forward`: a local TCP port for unmodified clients, as `ssh -L` gives. Every local
/// connection is a stream on one USP session (`ForwardSession`, reconnected when lost), and
/// bytes are copied both ways with half-close (a local FIN becomes a stream FIN and the reverse).
/// Through the client agent each local connection gets a stream from the agent instead.
public final class USPForwarder: Sendable {
    /// How each dedicated connection begins its application session.
    public enum Begin: Sendable {
        /// A stream on the forward's own session.
        case session(ForwardSession)
        /// Through the client agent (`usp agent`): the closure returns a connected stream socket
        /// whose other end the agent relays to the application; it is relayed as it is.
        case descriptor(@Sendable () async throws -> CInt)
    }

    public let localAddress: SocketAddress
    private let serverChannel: NIOAsyncChannel<LocalConnection, Never>

    /// An accepted local connection: raw, with what it sent held until its stream is open (a
    /// stream on the forward's session), or an async channel (relayed to the agent's descriptor).
    enum LocalConnection: Sendable {
        case held(any Channel)
        case async(NIOAsyncChannel<ByteBuffer, ByteBuffer>)
    }
    private let begin: Begin
    private let server: ServerURI
    private let home: ClientHome
    private let options: USPConnectionOptions

    /// Binds `host:port` (port 0 picks one; see `localAddress`).
    public init(listenHost: String, listenPort: Int, server: ServerURI, home: ClientHome, begin: Begin,
                options: USPConnectionOptions = USPConnectionOptions()) async throws {
        self.server = server
        self.home = home
        self.begin = begin
        self.options = options
        // With a session, local connections live on its loop, so a local read is sealed and sent
        // on the thread that read it (LocalChannelBridge); they are read only once their stream is open.
        let group: any EventLoopGroup
        switch begin {
        case .session(let session): group = session.eventLoop
        case .descriptor: group = options.eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        }
        do {
            serverChannel = try await ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
                                .childChannelOption(ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 64 * 1024, maximum: 256 * 1024))
                .bind(host: listenHost, port: listenPort) { [isSession = { if case .session = begin { true } else { false } }()] channel in
                    channel.eventLoop.makeCompletedFuture {
                        guard isSession else {
                            return .async(try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true)))
                        }
                        // What arrives before the stream is open is held, then handed on.
                        try channel.pipeline.syncOperations.addHandler(PendingInput())
                        return .held(channel)
                    }
                }
        } catch {
            throw USPClientError(.invalidArgument, "cannot listen on \(listenHost):\(listenPort): \(SocketErrorText.describe(error))")
        }
        guard let address = serverChannel.channel.localAddress else {
            throw USPClientError(.invalidArgument, "cannot listen on \(listenHost):\(listenPort)")
        }
        localAddress = address
    }

    /// Accepts connections until the listener is closed. `onError` hears per-connection failures
    /// (one line each); they do not stop the forwarder.
    public func run(onError: @escaping @Sendable (USPClientError) -> Void = { _ in }) async throws {
        let (server, home, options, begin) = (self.server, self.home, self.options, self.begin)
        try await serverChannel.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await local in inbound {
                    group.addTask {
                        do {
                            try await Self.serve(local, server: server, home: home, options: options, begin: begin)
                        } catch {
                            onError(ErrorText.local(error, server: server))
                        }
                    }
                }
            }
        }
    }

    /// Stops accepting; connections in progress go on until they end.
    public func stop() async {
        try? await serverChannel.channel.close()
    }

    static func serve(_ accepted: LocalConnection, server: ServerURI, home: ClientHome,
                      options: USPConnectionOptions, begin: Begin) async throws {
        switch (begin, accepted) {
        case (.descriptor(let open), .async(let local)):
            try await local.executeThenClose { inbound, outbound in
                let other = try await StreamRelay.channel(adopting: try await open(), on: local.channel.eventLoop)
                try await other.executeThenClose { otherInbound, otherOutbound in
                    try await StreamRelay.run(inbound: inbound, outbound: outbound, otherInbound: otherInbound, otherOutbound: otherOutbound)
                }
            }
        case (.session(let session), .held(let local)):
            let stream: USPStream
            do {
                stream = try await session.openStream()
            } catch {
                try? await local.close()
                throw error
            }
            if stream.core.eventLoop === local.eventLoop {
                do {
                    try await LocalChannelBridge.run(stream: stream, channel: local, inputDone: false, afterServerFIN: .halfClose)
                } catch {
                    await stream.close()
                    throw error
                }
                await stream.waitUntilClosed()
                return
            }
            // Not on the session's loop (a session opened elsewhere): through tasks.
            try await wrap(local).executeThenClose { inbound, outbound in
                do {
                    try await StreamRelay.run(inbound: inbound, outbound: outbound, stream: stream)
                } catch {
                    await stream.close()
                    throw error
                }
            }
        case (.descriptor, .held(let local)):
            try? await local.close()  // not made: the initializer matches `begin`
        case (.session, .async(let local)):
            try? await local.channel.close()
        }
    }

    /// `local` as an async channel, with what it sent so far.
    private static func wrap(_ local: any Channel) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await local.eventLoop.submit {
            let wrapped = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: local,
                                                                       configuration: .init(isOutboundHalfClosureEnabled: true))
            try local.pipeline.syncOperations.handler(type: PendingInput.self).release()
            return wrapped
        }.get()
    }
}
