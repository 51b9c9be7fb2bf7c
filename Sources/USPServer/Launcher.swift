import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import USPConfig
import USPCore
import USPNIO
import USPStore
import USPUnix

#if canImport(Glibc)
import Glibc
#endif

/// Starts the application behind a stream, per its `[launch]`:
/// - `exec`: a command started once per stream (session), the stream on its stdin and stdout or,
///   with `stream = "fd3"`, on a socket at fd 3 (`ExecBridge`, `ChildProcess`), with `USP_*`
///   variables describing the session (see `environment(for:)`);
/// - `tcp`: a connection to host:port (a local sshd, an HTTP server), bytes passed unchanged;
/// - `unix`: a hand-off to a running application on an AF_UNIX socket, which gets the session's
///   metadata and one end of a socketpair (`UnixHandoffBridge`, docs/APPLICATIONS.md).
///
/// All run on the session's event loop through NIO channels (`NIOPipeBootstrap` over pipes,
/// `ClientBootstrap` over TCP or the daemon's end of a socketpair), with back-pressure both ways
/// (see `ServerStreamApplication`). `max_sessions` is enforced here: a stream beyond it is refused
/// with `application_busy`. An exec'd command is confined by the application's `Isolation`
/// (network namespace, user and group, resource limits; see `ChildProcess`).
/// A launch that fails resets the stream with a specific code (`application_unavailable`,
/// `application_refused`, `resources_exhausted`) and logs one line naming the application.
public final class Launcher: Sendable {
    /// Everything a launched application learns about its session.
    public struct Request: Sendable {
        public var application: ApplicationDefinition
        public var identity: String?
        public var peerAddress: String
        public var serverSessionID: String
        /// The application token's ID.
        public var tokenID: String
        /// The ID of the authorization token the application token was issued under (nil: issued
        /// without login, for a public application).
        public var authorizationTokenID: String?
        /// The request body the application token was issued for (JSON object text).
        public var requestJSON: String
        /// A brokered token's client address (`identity` is then the broker); nil otherwise.
        public var brokeredFor: String?
        public init(application: ApplicationDefinition, identity: String?, peerAddress: String, serverSessionID: String,
                    tokenID: String, requestJSON: String, authorizationTokenID: String? = nil, brokeredFor: String? = nil) {
            self.brokeredFor = brokeredFor
            self.application = application
            self.identity = identity
            self.peerAddress = peerAddress
            self.serverSessionID = serverSessionID
            self.tokenID = tokenID
            self.authorizationTokenID = authorizationTokenID
            self.requestJSON = requestJSON
        }
    }

    let logger: Logger
    /// Where crashes of exec'd applications are recorded (`application_exited`).
    let audit: AuditLog?
    /// uspd.toml `max_streams_per_application`: a ceiling on every application's own `max_sessions`.
    public let maxSessionsPerApplication: Int?
    /// Where relay-free sessions are kept for revocation (the daemon's `SessionRegistry.relayFree`).
    let relayFreeSessions: RelayFreeSessions
    private let running = Mutex<[String: Int]>([:])
    /// Variables every exec'd command gets besides USP_*, from the daemon's own environment.
    private let baseEnvironment: [String: String]

    public init(logger: Logger = Logger(label: "uspd.launcher"), audit: AuditLog? = nil, maxSessionsPerApplication: Int? = nil,
                relayFreeSessions: RelayFreeSessions = RelayFreeSessions()) {
        self.relayFreeSessions = relayFreeSessions
        self.logger = logger
        self.audit = audit
        self.maxSessionsPerApplication = maxSessionsPerApplication
        // A write to a pipe whose reader exited must not kill the daemon (NIOPipeBootstrap requires it).
        signal(SIGPIPE, SIG_IGN)
        let env = ProcessInfo.processInfo.environment
        var base: [String: String] = ["PATH": env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"]
        for key in ["LANG", "LC_ALL", "TZ"] { if let v = env[key] { base[key] = v } }
        baseEnvironment = base
    }

    /// Concurrent sessions of `application` right now (for exec: processes not yet reaped).
    public func runningCount(_ application: String) -> Int { running.withLock { $0[application] ?? 0 } }

    /// The cap on concurrent sessions of `application` and the setting it comes from.
    func sessionCap(_ application: ApplicationDefinition) -> (limit: Int, setting: String)? {
        let own = application.limits.maxSessions.map { ($0, "max_sessions") }
        let server = maxSessionsPerApplication.map { ($0, "max_streams_per_application") }
        switch (own, server) {
        case let (own?, server?): return own.0 <= server.0 ? own : server
        case let (own, server): return own ?? server
        }
    }

    /// One session's place under its application's cap, taken by `reserve` before the stream is
    /// audited and launched; given back once, when the stream is over (for exec: when its process
    /// is reaped), or by `release()` if the launch does not happen.
    public final class Slot: Sendable {
        private let giveBack: Mutex<(@Sendable () -> Void)?>
        init(_ giveBack: @escaping @Sendable () -> Void) { self.giveBack = Mutex(giveBack) }
        /// Gives the place back; later calls do nothing.
        public func release() { giveBack.withLock { g in defer { g = nil }; return g }?() }
    }

    /// A place for one more session of `application`, or `application_busy` when it is at its cap
    /// (`max_sessions`, `max_streams_per_application`); the error's detail names the setting.
    public func reserve(_ application: ApplicationDefinition) -> Result<Slot, USPError> {
        let name = application.name
        let cap = sessionCap(application)
        let admitted = running.withLock { r -> Bool in
            if let cap, (r[name] ?? 0) >= cap.limit { return false }
            r[name, default: 0] += 1
            return true
        }
        guard admitted else {
            return .failure(USPError(.applicationBusy, "\(cap!.setting) (\(cap!.limit)) of \(name) reached"))
        }
        return .success(Slot { [self] in
            running.withLock { r in
                r[name] = max(0, (r[name] ?? 1) - 1)
                if r[name] == 0 { r[name] = nil }
            }
        })
    }

    /// Starts the application for a new stream in the place `slot` holds. A launch that fails
    /// resets the stream itself, with a specific code. Call on `port.eventLoop`.
    ///
    /// For exec the slot is held until the process is reaped, so `max_sessions` of an exec
    /// application also caps its concurrent processes.
    public func open(_ request: Request, port: ServerStreamPort, slot: Slot) -> any ServerStreamApplication {
        let name = request.application.name
        let release: @Sendable () -> Void = { slot.release() }
        switch request.application.launch {
        case .exec(let command, let extra, let stream):
            var env = baseEnvironment
            for (k, v) in extra { env[k] = v }
            for (k, v) in Self.environment(for: request) { env[k] = v }
            return exec(command, environment: env, stream: stream, request: request, port: port, release: release)
        case .tcp(let host, let tcpPort):
            let bridge = ChannelBridge(port: port, logger: logger, release: release)
            let bootstrap = ClientBootstrap(group: port.eventLoop)
                .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                .connectTimeout(.seconds(10))
                .channelInitializer(bridge.initializer())
            // An address literal is connected to directly: no resolver thread and no Happy
            // Eyeballs race for an answer known in advance. A name is resolved at each connect.
            let future = if let address = try? SocketAddress(ipAddress: host, port: tcpPort) {
                bootstrap.connect(to: address)
            } else {
                bootstrap.connect(host: host, port: tcpPort)
            }
            bridge.attach(when: future) { "\(name): connect to \(host):\(tcpPort)" }
            return bridge
        case .udp(let host, let udpPort):
            guard let target = try? SocketAddress(ipAddress: host, port: udpPort) else {
                let bridge = ChannelBridge(port: port, logger: logger, release: release)
                bridge.failSoon("\(name): udp \(host):\(udpPort) is not an IP address", code: .applicationUnavailable)
                return bridge
            }
            let bridge = UDPBridge(port: port, target: target, logger: logger, release: release)
            bridge.start(name: name)
            return bridge
        case .unix(let path, let relayFree):
            let bridge = UnixHandoffBridge(port: port, application: name, path: path, logger: logger, release: release)
            bridge.revocation = (relayFreeSessions, RelayFreeSessions.Key(session: request.serverSessionID, stream: port.stream),
                                 Set([request.tokenID] + (request.authorizationTokenID.map { [$0] } ?? [])),
                                 RelayFreeSessions.Description(application: name, identity: request.identity, peerAddress: request.peerAddress,
                                                               tokenID: request.tokenID, since: ServerClock.monotonic()))
            if relayFree {
                bridge.startRelayFree(metadata: HandoffMessage.metadata(for: request))
            } else {
                bridge.start(metadata: HandoffMessage.metadata(for: request))
            }
            return bridge
        }
    }

    private func exec(_ command: [String], environment: [String: String], stream: ApplicationDefinition.ExecStream, request: Request,
                      port: ServerStreamPort, release: @escaping @Sendable () -> Void) -> any ServerStreamApplication {
        let name = request.application.name
        var pair: SocketPair?
        do throws(UnixError) {
            if stream == .fd3 { pair = try SocketPair.make() }
            let child = try ChildProcess.spawn(command, environment: environment, stream: pair.map { .socket($0.second) } ?? .pipes,
                                               confinement: ChildProcess.Confinement(request.application.isolation),
                                               onExit: exitHandler(request, stream: port.stream, release: release))
            if let pair { close(pair.second) }
            // The slot goes with the process (`onExit`), not with the stream.
            let bridge = ExecBridge(port: port, child: child, socket: pair?.first, logger: logger, release: {})
            bridge.start()
            return bridge
        } catch {
            pair?.close()
            let bridge = ChannelBridge(port: port, logger: logger, release: release)
            bridge.failSoon("\(name): cannot start \(command.first ?? "?"): \(error)", code: error.streamCode)
            return bridge
        }
    }

    /// What happens when an exec'd application's process is reaped: its slot is released; an
    /// exit by a signal or with a non-zero status that uspd did not ask for (a crash, a kill from
    /// outside, RLIMIT_CPU) is logged as a warning with the application, session, stream and pid,
    /// and recorded as `application_exited`. Other sessions are not touched.
    private func exitHandler(_ request: Request, stream: UInt32, release: @escaping @Sendable () -> Void) -> ChildProcess.ExitHandler {
        let logger = self.logger
        let audit = self.audit
        return { pid, exit, stopRequested in
            release()
            let who = "\(request.application.name) (session \(request.serverSessionID), stream \(stream), pid \(pid))"
            guard let exit else {
                logger.warning("\(who): reaped elsewhere, exit status unknown")
                return
            }
            if exit.isSuccess || stopRequested {
                logger.debug("\(who): \(exit)\(stopRequested ? " after uspd stopped it" : "")")
                return
            }
            // uspd ignores SIGPIPE and keeps a stream's pipes open while the stream lives: a
            // program killed by SIGPIPE wrote after its client went away (a Ctrl-C, a closed
            // connection). That is how such programs end, not a crash.
            if exit == .signaled(SIGPIPE, coreDumped: false) {
                logger.info("\(who): ended by SIGPIPE after its client went away")
                return
            }
            logger.warning("\(who): \(exit)")
            audit?.note(AuditEvent(kind: .applicationExited, session: request.serverSessionID, peerAddress: request.peerAddress,
                                   identity: request.identity, result: exit.summary, tokenID: request.tokenID,
                                   authorizationTokenID: request.authorizationTokenID, application: request.application.name,
                                   stream: Int64(stream), detail: "\(exit) (pid \(pid))"))
        }
    }

    /// The `USP_*` variables of an exec'd command: USP_IDENTITY, USP_PEER_ADDRESS, USP_APPLICATION,
    /// USP_SESSION, USP_TOKEN_ID, USP_AUTHORIZATION_TOKEN_ID (empty without login), USP_BROKERED_FOR
    /// (the client address of a brokered token, else empty), USP_REQUEST_JSON,
    /// and USP_FIELD_<NAME> for each request field
    /// (name upper-cased, characters other than A–Z, 0–9 and _ replaced by _; strings as they are,
    /// other values as JSON).
    public static func environment(for request: Request) -> [String: String] {
        var env: [String: String] = [
            "USP_IDENTITY": request.identity ?? "",
            "USP_PEER_ADDRESS": request.peerAddress,
            "USP_APPLICATION": request.application.name,
            "USP_SESSION": request.serverSessionID,
            "USP_TOKEN_ID": request.tokenID,
            "USP_AUTHORIZATION_TOKEN_ID": request.authorizationTokenID ?? "",
            "USP_BROKERED_FOR": request.brokeredFor ?? "",
            "USP_REQUEST_JSON": request.requestJSON,
        ]
        if case .object(let fields)? = try? JSONValue.parse(Array(request.requestJSON.utf8)) {
            for (name, value) in fields {
                let key = "USP_FIELD_" + String(name.uppercased().map { c -> Character in
                    c.isASCII && (c.isLetter || c.isNumber || c == "_") ? c : "_"
                })
                switch value {
                case .string(let s): env[key] = s
                case .null: env[key] = ""
                default: env[key] = (try? value.encoded()).map { String(decoding: $0, as: UTF8.self) } ?? ""
                }
            }
        }
        return env
    }
}
