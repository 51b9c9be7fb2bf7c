import Logging
import NIOCore
import NIOPosix
import USPCore
import USPNIO
import USPUnix

#if canImport(Glibc)
import Glibc
#endif

/// A stream handed to a running application on an AF_UNIX socket (`[launch] unix`):
///
/// 1. a socketpair for the stream (EMFILE/ENFILE: `resources_exhausted`);
/// 2. a non-blocking connect to the application's socket (missing, refused, backlog full:
///    `application_unavailable`);
/// 3. one sendmsg with the metadata frame (`HandoffMessage`) and the application's end of the
///    socketpair (SCM_RIGHTS); the daemon closes its copy of that end;
/// 4. the answer line, read through a NIO channel on the session's event loop: `ok` starts the
///    relay over the daemon's end; another line is `application_refused`; end of file or
///    `HandoffMessage.answerTimeout` without a line is `application_unavailable`.
///
/// Client bytes that arrive meanwhile wait in `ChannelBridge.early` (bounded by the stream window).
final class UnixHandoffBridge: ChannelBridge {
    let application: String
    let path: String
    /// The daemon's end of the socketpair until the relay owns it.
    private var relayEnd: CInt = -1
    private var control: (any Channel)?
    private var timeout: Scheduled<Void>?
    private var answered = false
    /// The hand-off under way is relay-free: the session is frozen until the answer.
    private var relayFree = false
    /// Where an acknowledged relay-free session's control connection is kept, with the token IDs
    /// whose revocation must reach it (docs/PROTOCOL.md §14.2).
    var revocation: (sessions: RelayFreeSessions, key: RelayFreeSessions.Key, tokenIDs: Set<String>, description: RelayFreeSessions.Description)?

    init(port: ServerStreamPort, application: String, path: String, logger: Logger, release: @escaping @Sendable () -> Void) {
        self.application = application
        self.path = path
        super.init(port: port, logger: logger, release: release)
    }

    private var what: String { "\(application): hand-off to \(path)" }
    static let closedWithoutAccepting = "the application closed the connection without accepting"

    /// The relayed hand-off: a socketpair for the stream, its far end to the application. On
    /// `connection` if one is open to the application already.
    func start(metadata: JSONValue, connection: CInt? = nil) {
        guard let frame = HandoffMessage.frame(metadata) else {
            if let connection { close(connection) }
            failSoon("\(what): the metadata is larger than \(HandoffMessage.maximumLength) bytes", code: .applicationUnavailable)
            return
        }
        do throws(UnixError) {
            let pair: SocketPair
            do throws(UnixError) { pair = try SocketPair.make() } catch {
                if let connection { close(connection) }
                throw error
            }
            relayEnd = pair.first
            defer { close(pair.second) }
            let target: CInt
            if let connection { target = connection } else { target = try connectToApplication() }
            try deliver(frame, descriptor: pair.second, on: target)
        } catch {
            failSoon("\(what): \(Self.reason(error))", code: error.streamCode)
        }
    }

    private func connectToApplication() throws(UnixError) -> CInt {
        try UnixSocket.connect(to: try UnixSocketAddress(path: path), nonBlocking: true)
    }

    /// Sends `frame` with `descriptor` (SCM_RIGHTS) on `connection`, which is closed on failure;
    /// the answer comes to `answer(_:)`.
    private func deliver(_ frame: [UInt8], descriptor: CInt, on connection: CInt) throws(UnixError) {
        let sent: Int
        do throws(UnixError) {
            sent = try DescriptorPassing.send(connection, bytes: frame, descriptors: [descriptor])
        } catch {
            close(connection)
            throw error
        }
        wrapControl(connection, rest: Array(frame[sent...]))
    }

    private static func reason(_ error: UnixError) -> String {
        switch error.errno {
        case EAGAIN: return "the application's listen backlog is full"
        // It accepted and closed before the message went: the same as closing without answering.
        case EPIPE, ECONNRESET: return closedWithoutAccepting
        default: return error.detail
        }
    }

    // MARK: - Relay-free (docs/PROTOCOL.md §14)

    /// A relay-free hand-off when the connection is dedicated to this stream, else (with a debug
    /// line saying why) the relayed hand-off of `start`. It begins on the next turn of the event
    /// loop, once the begin reply and any early DATA have been processed and sent.
    func startRelayFree(metadata: JSONValue) {
        let me = NIOLoopBound(self, eventLoop: port.eventLoop)
        port.eventLoop.execute { me.value.beginRelayFree(metadata) }
    }

    private func beginRelayFree(_ metadata: JSONValue) {
        guard !closed else { return }
        let me = NIOLoopBound(self, eventLoop: port.eventLoop)
        port.beginHandoff(undelivered: earlyBytes) { result in
            switch result {
            case .success(let handoff): me.value.sendRelayFree(handoff, metadata: metadata)
            case .failure(let error): me.value.relayInstead(metadata, because: error.detail, handoffBegun: false)
            }
        }
    }

    private func relayInstead(_ metadata: JSONValue, because reason: String, handoffBegun: Bool) {
        if handoffBegun { port.failHandoff() }
        guard !closed else { return }
        logger.debug("stream \(port.stream): \(application): no relay-free hand-off (\(reason)); relaying")
        start(metadata: metadata)
    }

    /// The socket is found by its addresses (NIO does not expose descriptors; `TCPSocketLookup`)
    /// and duplicated; the duplicate goes to the application, and this process's copies are closed
    /// only once the application acknowledged (`answer`), by closing the session's channel.
    private func sendRelayFree(_ handoff: RelayFreeHandoff, metadata: JSONValue) {
        var handoff = handoff
        var snapshot = handoff.snapshot.encoded()
        handoff.snapshot.zeroize()
        defer { DedicatedStreamSnapshot.zeroize(&snapshot) }
        guard var frame = HandoffMessage.relayFreeFrame(metadata, snapshot: snapshot) else {
            relayInstead(metadata, because: "the snapshot of \(snapshot.count) bytes is too large", handoffBegun: true)
            return
        }
        defer { DedicatedStreamSnapshot.zeroize(&frame) }
        let socket: CInt
        do throws(UnixError) {
            socket = try TCPSocketLookup.duplicate(local: Self.endpoint(handoff.localAddress), remote: Self.endpoint(handoff.remoteAddress))
        } catch {
            relayInstead(metadata, because: "the connection's socket: \(error.detail)", handoffBegun: true)
            return
        }
        // The application's copy travels in the message; this one is not needed after sendmsg.
        defer { close(socket) }
        let connection: CInt
        do throws(UnixError) { connection = try connectToApplication() } catch {
            port.failHandoff()
            failSoon("\(what): \(Self.reason(error))", code: error.streamCode)
            return
        }
        // The keys go only to a process of uspd's own user (or root): the listener's SO_PEERCRED.
        let peer = try? PeerCredentials.of(connection)
        guard let peer, peer.uid == getuid() || peer.uid == 0 else {
            port.failHandoff()
            logger.debug("stream \(port.stream): \(application): no relay-free hand-off (the process on \(path) runs as uid \(peer.map { "\($0.uid)" } ?? "?"), not uspd's \(getuid())); relaying")
            start(metadata: metadata, connection: connection)
            return
        }
        relayFree = true
        do throws(UnixError) {
            try deliver(frame, descriptor: socket, on: connection)
        } catch {
            relayFree = false
            port.failHandoff()
            failSoon("\(what): \(Self.reason(error))", code: error.streamCode)
        }
    }

    private static func endpoint(_ address: SocketAddress) -> TCPSocketLookup.Endpoint {
        TCPSocketLookup.Endpoint(address: address.ipAddress ?? "", port: address.port ?? 0)
    }

    /// Reads the answer on the control connection; sends what sendmsg did not take.
    private func wrapControl(_ connection: CInt, rest: [UInt8]) {
        let me = NIOLoopBound(self, eventLoop: port.eventLoop)
        let loop = port.eventLoop
        ClientBootstrap(group: loop)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(HandoffAnswerHandler { me.value.answer($0) })
                }
            }
            .withConnectedSocket(connection)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    me.value.controlReady(channel, rest: rest)
                case .failure(let error):
                    me.value.failedToStart("\(me.value.what): \(error)", code: .applicationUnavailable)
                }
            }
        timeout = loop.scheduleTask(in: HandoffMessage.answerTimeout) {
            me.value.answer(.timedOut)
        }
    }

    private func controlReady(_ channel: any Channel, rest: [UInt8]) {
        guard !closed, !answered else { channel.close(promise: nil); return }
        control = channel
        if !rest.isEmpty { channel.writeAndFlush(channel.allocator.buffer(bytes: rest), promise: nil) }
    }

    enum Answer {
        case line(String)
        case endOfFile
        case timedOut
    }

    func answer(_ answer: Answer) {
        guard !answered else { return }
        answered = true
        timeout?.cancel()
        timeout = nil
        if relayFree, case .line("ok") = answer, !closed, let control, let revocation {
            // The connection stays open as the session's control line: a revocation is told there.
            // Its place under max_sessions is given back when that line closes, not now.
            revocation.sessions.add(revocation.key, control: control, tokenIDs: revocation.tokenIDs, description: revocation.description,
                                    onEnd: takeRelease())
            self.control = nil
        }
        control?.close(promise: nil)
        control = nil
        guard !closed else { return }
        if relayFree {
            relayFree = false
            if case .line("ok") = answer {
                logger.debug("stream \(port.stream): \(application) took the connection over relay-free on \(path)")
                port.completeHandoff()
                closed(code: .ok)
                return
            }
            // Not acknowledged: the session is ours again; the stream is reset as below.
            port.failHandoff()
        }
        switch answer {
        case .line("ok"):
            let end = relayEnd
            relayEnd = -1
            logger.debug("stream \(port.stream): \(application) accepted the hand-off on \(path)")
            attachSocket(end) { [what] in "\(what): relay socket" }
        case .line(let line):
            failedToStart("\(what): the application refused: \(HandoffMessage.printable(line))", code: .applicationRefused)
        case .endOfFile:
            failedToStart("\(what): \(Self.closedWithoutAccepting)", code: .applicationUnavailable)
        case .timedOut:
            failedToStart("\(what): no answer within \(HandoffMessage.answerTimeout.nanoseconds / 1_000_000_000) s", code: .applicationUnavailable)
        }
    }

    override func stopped(code: USPError.Code) {
        timeout?.cancel()
        timeout = nil
        answered = true
        control?.close(promise: nil)
        control = nil
        if relayEnd >= 0 {
            close(relayEnd)
            relayEnd = -1
        }
    }
}

/// Collects the application's answer line on the control connection.
final class HandoffAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var line: [UInt8] = []
    private var done = false
    private let onAnswer: (UnixHandoffBridge.Answer) -> Void

    init(onAnswer: @escaping (UnixHandoffBridge.Answer) -> Void) { self.onAnswer = onAnswer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        let buffer = unwrapInboundIn(data)
        for byte in buffer.readableBytesView {
            if byte == UInt8(ascii: "\n") || line.count >= HandoffMessage.maximumAnswerLength {
                finish(.line(String(decoding: line, as: UTF8.self).trimmingTrailingCarriageReturn))
                return
            }
            line.append(byte)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            finish(line.isEmpty ? .endOfFile : .line(String(decoding: line, as: UTF8.self)))
            // The application closed its end (a relay-free session's control line: its session
            // is over): close ours, which also drops it from RelayFreeSessions.
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.endOfFile)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.endOfFile)
        context.close(promise: nil)
    }

    private func finish(_ answer: UnixHandoffBridge.Answer) {
        guard !done else { return }
        done = true
        onAnswer(answer)
    }
}

private extension String {
    var trimmingTrailingCarriageReturn: String { hasSuffix("\r") ? String(dropLast()) : self }
}
