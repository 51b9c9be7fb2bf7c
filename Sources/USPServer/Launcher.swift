import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import USPConfig
import USPCore
import USPNIO

#if canImport(Glibc)
import Glibc
#endif

/// Starts the application behind a stream, per its `[launch]`:
/// - `exec`: a command started once per stream (session), the stream on its stdin and stdout,
///   with `USP_*` variables describing the session (see `environment(for:)`);
/// - `tcp`: a connection to host:port (a local sshd, an HTTP server), bytes passed unchanged.
///
/// Both run on the session's event loop through NIO channels (`NIOPipeBootstrap` over pipes,
/// `ClientBootstrap`), with back-pressure both ways (see `ServerStreamApplication`).
/// `max_sessions` is enforced here: a stream beyond it is refused.
public final class Launcher: Sendable {
    /// Everything a launched application learns about its session.
    public struct Request: Sendable {
        public var application: ApplicationDefinition
        public var identity: String?
        public var peerAddress: String
        public var serverSessionID: String
        public var tokenID: String
        /// The request body the application token was issued for (JSON object text).
        public var requestJSON: String
        public init(application: ApplicationDefinition, identity: String?, peerAddress: String, serverSessionID: String,
                    tokenID: String, requestJSON: String) {
            self.application = application
            self.identity = identity
            self.peerAddress = peerAddress
            self.serverSessionID = serverSessionID
            self.tokenID = tokenID
            self.requestJSON = requestJSON
        }
    }

    let logger: Logger
    private let running = Mutex<[String: Int]>([:])
    /// Variables every exec'd command gets besides USP_*, from the daemon's own environment.
    private let baseEnvironment: [String: String]

    public init(logger: Logger = Logger(label: "uspd.launcher")) {
        self.logger = logger
        // A write to a pipe whose reader exited must not kill the daemon (NIOPipeBootstrap requires it).
        signal(SIGPIPE, SIG_IGN)
        let env = ProcessInfo.processInfo.environment
        var base: [String: String] = ["PATH": env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"]
        for key in ["LANG", "LC_ALL", "TZ"] { if let v = env[key] { base[key] = v } }
        baseEnvironment = base
    }

    /// Concurrent streams of `application` right now.
    public func runningCount(_ application: String) -> Int { running.withLock { $0[application] ?? 0 } }

    /// Starts the application for a new stream; nil if it cannot start (limit reached, spawn failed).
    /// Call on `port.eventLoop`.
    public func open(_ request: Request, port: ServerStreamPort) -> (any ServerStreamApplication)? {
        let name = request.application.name
        let admitted = running.withLock { r -> Bool in
            if let max = request.application.limits.maxSessions, (r[name] ?? 0) >= max { return false }
            r[name, default: 0] += 1
            return true
        }
        guard admitted else {
            logger.notice("\(name): max_sessions reached, stream refused")
            return nil
        }
        let release: @Sendable () -> Void = { [self] in
            running.withLock { r in
                r[name] = max(0, (r[name] ?? 1) - 1)
                if r[name] == 0 { r[name] = nil }
            }
        }
        switch request.application.launch {
        case .exec(let command, let extra):
            var env = baseEnvironment
            for (k, v) in extra { env[k] = v }
            for (k, v) in Self.environment(for: request) { env[k] = v }
            do {
                let child = try ChildProcess.spawn(command, environment: env)
                let bridge = ExecBridge(port: port, child: child, logger: logger, release: release)
                bridge.start()
                return bridge
            } catch {
                logger.error("\(name): cannot start \(command.first ?? "?"): \(error)")
                release()
                return nil
            }
        case .tcp(let host, let tcpPort):
            let bridge = ChannelBridge(port: port, logger: logger, release: release)
            let bound = NIOLoopBound(bridge, eventLoop: port.eventLoop)
            ClientBootstrap(group: port.eventLoop)
                .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                .connectTimeout(.seconds(10))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ApplicationSideHandler(bridge: bound.value))
                    }
                }
                .connect(host: host, port: tcpPort)
                .assumeIsolated()
                .whenComplete { result in
                    switch result {
                    case .success(let channel): bound.value.attach(channel)
                    case .failure(let error): bound.value.failedToStart("connect to \(host):\(tcpPort): \(error)")
                    }
                }
            return bridge
        }
    }

    /// The `USP_*` variables of an exec'd command: USP_IDENTITY, USP_PEER_ADDRESS, USP_APPLICATION,
    /// USP_SESSION, USP_TOKEN_ID, USP_REQUEST_JSON, and USP_FIELD_<NAME> for each request field
    /// (name upper-cased, characters other than A–Z, 0–9 and _ replaced by _; strings as they are,
    /// other values as JSON).
    public static func environment(for request: Request) -> [String: String] {
        var env: [String: String] = [
            "USP_IDENTITY": request.identity ?? "",
            "USP_PEER_ADDRESS": request.peerAddress,
            "USP_APPLICATION": request.application.name,
            "USP_SESSION": request.serverSessionID,
            "USP_TOKEN_ID": request.tokenID,
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

/// Moves bytes between a stream and an application channel (a TCP connection or a process's pipes).
class ChannelBridge: ServerStreamApplication {
    let port: ServerStreamPort
    let logger: Logger
    private let release: @Sendable () -> Void
    private var channel: (any Channel)?
    /// Client bytes that arrived before the channel was ready.
    private var early: [ByteBuffer] = []
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

    func attach(_ channel: any Channel) {
        guard !closed else { channel.close(promise: nil); return }
        self.channel = channel
        for buffer in early { forward(buffer) }
        early = []
        channel.flush()
        if clientDone { channel.close(mode: .output, promise: nil) }
    }

    func failedToStart(_ reason: String) {
        logger.error("stream \(port.stream): \(reason)")
        guard !closed else { return }
        port.reset(code: .streamRefused)
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
        // Credit goes back to the client only once the application accepted the bytes. The
        // flush comes at the end of the batch (`receivedBatchEnded`): one writev for its records.
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
        if applicationDone { port.finish() } else {
            channel?.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        }
    }

    /// The application sent everything (EOF on its output).
    func applicationFinished() {
        guard !applicationDone else { return }
        applicationDone = true
        if unsent == nil, !closed { port.finish() }
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

/// An exec'd command: its stdout is read and its stdin written through a pipe channel.
final class ExecBridge: ChannelBridge {
    let child: ChildProcess

    init(port: ServerStreamPort, child: ChildProcess, logger: Logger, release: @escaping @Sendable () -> Void) {
        self.child = child
        super.init(port: port, logger: logger, release: release)
    }

    func start() {
        let bound = NIOLoopBound(self as ChannelBridge, eventLoop: port.eventLoop)
        let me = NIOLoopBound(self, eventLoop: port.eventLoop)
        NIOPipeBootstrap(group: port.eventLoop)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ApplicationSideHandler(bridge: bound.value))
                }
            }
            .takingOwnershipOfDescriptors(input: child.stdoutRead, output: child.stdinWrite)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel): me.value.attach(channel)
                case .failure(let error): me.value.failedToStart("pipes of pid \(me.value.child.pid): \(error)")
                }
            }
    }

    override func stopped(code: USPError.Code) {
        // A stream that ended normally gives the command a moment to exit by itself; a reset or a
        // revocation terminates it at once. Either way it is killed if it lingers, and reaped.
        child.stop(graceful: code == .ok, on: port.eventLoop, logger: logger)
    }
}

/// A child process started with posix_spawn in its own process group, with pipes on 0 and 1.
final class ChildProcess: Sendable {
    let pid: pid_t
    let stdinWrite: CInt
    let stdoutRead: CInt

    private init(pid: pid_t, stdinWrite: CInt, stdoutRead: CInt) {
        self.pid = pid
        self.stdinWrite = stdinWrite
        self.stdoutRead = stdoutRead
    }

    struct SpawnError: Error, CustomStringConvertible {
        let call: String
        let errno: CInt
        var description: String { "\(call): \(String(cString: strerror(errno)))" }
    }

    static func spawn(_ command: [String], environment: [String: String]) throws -> ChildProcess {
        guard let program = command.first, !program.isEmpty else { throw SpawnError(call: "exec", errno: ENOENT) }
        var stdinPipe: [CInt] = [-1, -1]
        var stdoutPipe: [CInt] = [-1, -1]
        guard SpawnSymbols.pipe2(&stdinPipe, O_CLOEXEC) == 0 else { throw SpawnError(call: "pipe2", errno: errno) }
        guard SpawnSymbols.pipe2(&stdoutPipe, O_CLOEXEC) == 0 else {
            let e = errno
            close(stdinPipe[0]); close(stdinPipe[1])
            throw SpawnError(call: "pipe2", errno: e)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        // Nothing of the daemon's (listeners, other sessions, the database) leaks into the child.
        if let closefrom = SpawnSymbols.addclosefrom { _ = closefrom(&actions, 3) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = command.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, program, &actions, &attributes, argv, envp)
        close(stdinPipe[0])
        close(stdoutPipe[1])
        guard rc == 0 else {
            close(stdinPipe[1]); close(stdoutPipe[0])
            throw SpawnError(call: "posix_spawn \(program)", errno: rc)
        }
        return ChildProcess(pid: pid, stdinWrite: stdinPipe[1], stdoutRead: stdoutPipe[0])
    }

    /// Reaps the child, sending SIGTERM to its process group after `grace` (0 when not graceful)
    /// and SIGKILL three seconds later if it is still there.
    func stop(graceful: Bool, on loop: any EventLoop, logger: Logger) {
        let pid = self.pid
        let start = ServerClock.monotonic()
        let termAfter = graceful ? 2.0 : 0.0
        let killAfter = termAfter + 3
        let state = NIOLoopBoundBox((termed: false, killed: false), eventLoop: loop)
        @Sendable func poll() {
            var status: CInt = 0
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno == ECHILD) { return }
            let elapsed = ServerClock.monotonic() - start
            if !state.value.termed, elapsed >= termAfter {
                state.value.termed = true
                kill(-pid, SIGTERM)
            } else if !state.value.killed, elapsed >= killAfter {
                state.value.killed = true
                logger.notice("pid \(pid) ignored SIGTERM, killing it")
                kill(-pid, SIGKILL)
            }
            loop.scheduleTask(in: .milliseconds(elapsed < 1 ? 20 : 200)) { poll() }
        }
        poll()
    }
}

/// glibc functions that Swift's Glibc module does not show without _GNU_SOURCE, found at run time.
enum SpawnSymbols {
    typealias Pipe2 = @convention(c) (UnsafeMutablePointer<CInt>?, CInt) -> CInt
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, CInt) -> CInt

    /// pipe2(2): both descriptors close-on-exec from the start, so a process spawned at the same
    /// moment from another event loop cannot inherit them.
    nonisolated(unsafe) static let pipe2: Pipe2 = {
        guard let p = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pipe2") else {
            return { fds, flags in
                guard let fds, pipe(fds) == 0 else { return -1 }
                _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
                _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
                return 0
            }
        }
        return unsafeBitCast(p, to: Pipe2.self)
    }()

    /// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+): close every descriptor from 3 up in the child.
    static let addclosefrom: AddCloseFrom? = {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: AddCloseFrom.self) }
    }()
}
