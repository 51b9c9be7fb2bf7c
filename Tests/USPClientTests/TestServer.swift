import Foundation
import NIOCore
import NIOPosix
import USPCore
import USPTestSupport
import USPNIO

extension TestPolicy {
    /// The policy a `TestServer` has unless a test gives it another: `noise_static` logins beside
    /// passwords, no `application_session` actions, a fourth public application (`counter`, with
    /// typed fields), and system randomness, so that no two servers issue the same tokens.
    static func forTestServer() -> TestPolicy {
        let counter = ApplicationOffer(name: "counter", description: "counts", expectedRequestBody: ["start": "integer", "verbose": "boolean?"])
        return TestPolicy(random: SystemRandomSource(), offersNoiseStatic: true, answeredActions: [],
                          applications: TestPolicy.standardApplications + [(4, counter, false)])
    }
}

/// A USP server for tests, built only from USPCore's `ServerSession` and the policy above, over
/// real loopback TCP. One event loop, so the policy needs no lock. Applications: `echo` (and
/// every other name) echoes each stream back, with backpressure: bytes are consumed (credit
/// returned to the client) only once the echo has been handed to the session.
final class TestServer: @unchecked Sendable {
    static let defaultKey = try! KeyPair(privateKey: [UInt8](repeating: 7, count: 32))

    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let policy: TestPolicy
    let key: KeyPair
    let allowFirstContact: Bool
    let host: String
    private(set) var port = 0
    private var channel: (any Channel)?
    /// Live connections, for revocation broadcast (event loop only).
    var connections: [ObjectIdentifier: TestServerHandler] = [:]
    /// What the server saw, for assertions (event loop only).
    var handshakes: [(pattern: HandshakeLayout.Pattern, early: Bool)] = []
    /// Stream bytes that arrived in message 1 itself (the same read that completed the handshake).
    var bytesInMessage1: [[UInt8]] = []

    init(policy: TestPolicy = .forTestServer(), key: KeyPair = TestServer.defaultKey, allowFirstContact: Bool = true, host: String = "127.0.0.1") {
        self.host = host
        self.policy = policy
        self.key = key
        self.allowFirstContact = allowFirstContact
    }

    var publicKey: [UInt8] { key.publicKey }
    var hostPort: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    var uri: String { "usp://\(hostPort)" }
    var pinnedURI: String { "usp://\(Base64URL.encode(key.publicKey))@\(hostPort)" }

    func start() async throws {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let address = channel.remoteAddress?.ipAddress ?? "?"
                    let handler = TestServerHandler(server: self, peerAddress: address)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let ch = try await bootstrap.bind(host: host, port: 0).get()
        channel = ch
        port = ch.localAddress!.port!
    }

    func stop() async {
        try? await channel?.close().get()
        try? await group.shutdownGracefully()
    }

    /// Runs `body` on the server's event loop (for reading `policy` and the logs).
    func onLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        try! await group.next().submit(body).get()
    }

    func revoke(_ ids: Set<TokenProof.TokenID>, except: ObjectIdentifier) {
        for (id, h) in connections where id != except { h.revoke(ids) }
    }
}

final class TestServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    unowned let server: TestServer
    var session: ServerSession
    var context: ChannelHandlerContext?
    /// Echo bytes not yet taken by the session (no credit), per stream.
    var pendingEcho: [UInt32: [UInt8]] = [:]
    var finishAfterEcho: Set<UInt32> = []

    init(server: TestServer, peerAddress: String) {
        self.server = server
        session = ServerSession(staticKey: server.key, peerAddress: peerAddress, allowFirstContact: server.allowFirstContact)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        server.connections[ObjectIdentifier(self)] = self
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        server.connections[ObjectIdentifier(self)] = nil
        self.context = nil
    }

    enum Note {
        case handshake(HandshakeLayout.Pattern, Bool)
        case data(UInt32, [UInt8])
        case finished(UInt32)
        case writable(UInt32)
        case invalidated([TokenProof.TokenID])
        case closed
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        var notes: [Note] = []
        buffer.withUnsafeReadableBytes { bytes in
            session.receive(bytes, now: ClientSessionHandler.wallClock(), delegate: server.policy) { e in
                notes.append(Self.note(e))
            }
        }
        handle(notes)
    }

    func channelInactive(context: ChannelHandlerContext) {
        session.endOfInput { _ in }
        context.fireChannelInactive()
    }

    static func note(_ e: ServerAction) -> Note {
        switch e {
        case .handshakeCompleted(let p, _, let early): .handshake(p, early)
        case .streamData(let s, let d): .data(s, Array(d))
        case .streamFinished(let s): .finished(s)
        case .streamWritable(let s): .writable(s)
        case .tokensInvalidated(let ids): .invalidated(ids)
        case .closed: .closed
        case .authenticated, .streamOpened, .streamClosed, .authenticationRequested: .writable(0)
        }
    }

    func handle(_ notes: [Note]) {
        var handshakeInThisRead = false
        for n in notes {
            switch n {
            case .handshake(let p, let early):
                server.handshakes.append((p, early))
                handshakeInThisRead = p != .xx
            case .data(let s, let d):
                if handshakeInThisRead { server.bytesInMessage1.append(d) }
                pendingEcho[s, default: []] += d
                pump(s)
            case .finished(let s):
                finishAfterEcho.insert(s)
                pump(s)
            case .writable(let s):
                if s != 0 { pump(s) }
            case .invalidated(let ids):
                server.revoke(Set(ids), except: ObjectIdentifier(self))
            case .closed:
                break
            }
        }
        flush()
    }

    /// Echoes what the session will take; returns credit for exactly that much.
    func pump(_ s: UInt32) {
        if let bytes = pendingEcho[s], !bytes.isEmpty {
            let n = (try? bytes.withUnsafeBytes { try session.write(stream: s, $0) }) ?? 0
            if n > 0 {
                pendingEcho[s] = Array(bytes[n...])
                try? session.consumed(stream: s, count: n)
            }
        }
        if pendingEcho[s, default: []].isEmpty, finishAfterEcho.contains(s) {
            finishAfterEcho.remove(s)
            pendingEcho[s] = nil
            try? session.finish(stream: s) { _ in }
        }
    }

    func revoke(_ ids: Set<TokenProof.TokenID>) {
        try? session.revoke(tokenIDs: ids) { _ in }
        flush()
    }

    func flush() {
        guard let context else { return }
        if session.outboundByteCount > 0 {
            let buf = session.drainOutbound { context.channel.allocator.buffer(bytes: $0) }
            context.writeAndFlush(wrapOutboundOut(buf), promise: nil)
        }
        if session.state == .closed { context.close(promise: nil) }
    }
}
