import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// `GET /metrics` in Prometheus' text format, on its own listener (`metrics_listen`, off by
/// default; meant for loopback or a monitoring network, never the USP port: a USP port answers
/// nothing in the clear). Other paths get 404, other methods 405. Each scrape first sets the
/// gauges of live state from the daemon, read on each session's event loop.
final class MetricsEndpoint: Sendable {
    let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    static func start(address: ListenAddress, group: any EventLoopGroup, registry: PrometheusCollectorRegistry,
                      daemon: USPDaemon) async throws -> MetricsEndpoint {
        let gauges = LiveGauges(daemon: daemon)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(ScrapeHandler(registry: registry, gauges: gauges))
                }
            }
        do {
            let channel = try await bootstrap.bind(host: address.host, port: address.port).get()
            return MetricsEndpoint(channel: channel)
        } catch {
            throw ListenError(address: address.text + " (metrics_listen)", underlying: "\(error)")
        }
    }

    func stop() async {
        try? await channel.close()
    }
}

/// Sets the gauges of what is live now, before a scrape is written.
struct LiveGauges: Sendable {
    let daemon: USPDaemon

    func update(on loop: any EventLoop) -> EventLoopFuture<Void> {
        let runtime = daemon.runtime
        return runtime.registry.snapshots(on: loop).map { sessions in
            let metrics = runtime.metrics
            let relayFree = runtime.registry.relayFree.count
            metrics.gauge("usp_connections_open", runtime.admission.total)
            metrics.gauge("usp_connections_unauthenticated", runtime.admission.starting)
            metrics.gauge("usp_sessions_live", sessions.count)
            metrics.gauge("usp_sessions_logged_in", sessions.filter { $0.identity != nil }.count)
            metrics.gauge("usp_streams_open", sessions.reduce(0) { $0 + $1.streams.count } + relayFree)
            metrics.gauge("usp_streams_relay_free", relayFree)
            metrics.gauge("usp_known_sources", runtime.rateLimiter.knownSources)
            metrics.gauge("usp_silent_holds", runtime.silentHolds?.count ?? 0)
            metrics.gauge("usp_applications", runtime.policy.catalog.snapshot().entries.count)
            metrics.gauge("usp_audit_pending_rows", runtime.audit.pendingCount)
            let strangers = runtime.audit.strangerCounts
            metrics.mirror("usp_audit_summarised_total", total: strangers.summarised)
            metrics.mirror("usp_audit_dropped_total", total: strangers.dropped)
        }
    }
}

private final class ScrapeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private let gauges: LiveGauges
    private var request: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry, gauges: LiveGauges) {
        self.registry = registry
        self.gauges = gauges
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): request = head
        case .body: break
        case .end:
            guard let head = request else { return }
            request = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        guard path == "/metrics" else {
            return send(.notFound, "only /metrics is served here\n", head: head, context: context)
        }
        guard head.method == .GET || head.method == .HEAD else {
            return send(.methodNotAllowed, "use GET\n", head: head, context: context, extra: [("Allow", "GET, HEAD")])
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        gauges.update(on: context.eventLoop).whenComplete { [registry] _ in
            let (handler, context) = loopBound.value
            var body: [UInt8] = []
            registry.emit(into: &body)
            handler.send(.ok, body, head: head, context: context, contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
    }

    private func send(_ status: HTTPResponseStatus, _ text: String, head: HTTPRequestHead, context: ChannelHandlerContext,
                      extra: [(String, String)] = []) {
        send(status, Array(text.utf8), head: head, context: context, contentType: "text/plain; charset=utf-8", extra: extra)
    }

    private func send(_ status: HTTPResponseStatus, _ body: [UInt8], head: HTTPRequestHead, context: ChannelHandlerContext,
                      contentType: String, extra: [(String, String)] = []) {
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", "\(body.count)")] + extra)
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
