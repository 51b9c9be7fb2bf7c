import Dispatch
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import Synchronization
import USPClient
import USPCore
import USPUnix

/// `usp agent`: the client side of the proposal's system mediation. Local programs of the same
/// user ask it, over `agent.sock`, for a stream to (server, application, request fields); it
/// opens the USP stream with the user's identity key and saved logins, and hands the program one
/// end of a socketpair (SCM_RIGHTS) that it relays to the stream, with half-close both ways.
/// Programs never see a credential; each open is rate-limited per program and logged.
///
/// Control connections are served on their own threads (at most `maximumPending` at once):
/// each reads one request with a deadline, answers it, and closes. Relays run on NIO.
public final class AgentServer: Sendable {
    public struct Configuration: Sendable {
        public var home: ClientHome
        public var socket: AgentSocketPath
        public var rate: AgentRateLimiter.Rate = .default
        public var burst = 10
        /// How the agent connects. Server keys are checked strictly by default: a program cannot
        /// make the agent trust a new server; `usp login` or `usp menu` records keys first.
        public var connection: USPConnectionOptions
        public var maximumPending = 32
        /// Seconds a program has to send its request.
        public var requestTimeout: Double = 5
        /// A listening socket made by systemd (`usp-agent.socket`): served instead of `socket`,
        /// and never removed.
        public var inherited: InheritedAgentSocket?
        /// Signals that stop the agent (as `stop()` does). Their handlers are installed before the
        /// socket exists, so a signal sent once a client can connect is never lost.
        public var stopSignals: [CInt] = []

        public init(home: ClientHome) {
            self.home = home
            socket = .of(home: home)
            connection = USPConnectionOptions()
            connection.serverKeyChecking = .strict
        }
    }

    public let configuration: Configuration
    public let log: AgentLog
    private let listener: CInt
    /// Whether this agent made the socket file (and so removes it at the end).
    private let createdSocketFile: Bool
    /// `stop()` and the stop signals write a byte here to wake the accept loop. shutdown() on the
    /// listener would do, but an inherited socket is systemd's too: shut down, it would refuse
    /// every later connection.
    private let wake: SignalPipe
    /// The signal that stopped the agent (0: `stop()`), once it stopped.
    private let stoppedBy = Atomic<CInt>(0)
    private let uid = geteuid()
    /// This agent's binary: a peer running it (`usp connect`) speaks for its parent.
    private let ownExecutable = ProcessExecutable.path(of: getpid())
    private let limiter: Mutex<AgentRateLimiter>
    private let table = AgentStreamTable()
    private let pending = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let opener: AgentOpener

    /// Checks the socket's place and listens there (mode 0600). Refuses, with one line, a
    /// directory or socket file of another user or writable by others, a file that is not a
    /// socket, and a socket another agent answers on; a stale socket of ours is replaced.
    /// With `configuration.inherited` (systemd socket activation), serves on that socket instead.
    public init(configuration: Configuration, log: AgentLog) throws(AgentError) {
        var configuration = configuration
        do throws(UnixError) {
            wake = try SignalPipe.install(configuration.stopSignals)
        } catch {
            throw AgentError(.systemCall, "cannot set up the agent's wake-up pipe and signal handlers: \(error.detail)")
        }
        if let inherited = configuration.inherited {
            configuration.socket = inherited.socket
            listener = inherited.descriptor
            createdSocketFile = false
        } else {
            do {
                listener = try Self.listen(on: configuration.socket)
            } catch {
                wake.close()
                throw error
            }
            createdSocketFile = true
        }
        self.configuration = configuration
        self.log = log
        limiter = Mutex(AgentRateLimiter(rate: configuration.rate, burst: configuration.burst))
        opener = AgentOpener(home: configuration.home, options: configuration.connection, log: log)
    }

    /// A new listening socket at `socket`, after the checks `init` describes.
    private static func listen(on socket: AgentSocketPath) throws(AgentError) -> CInt {
        try socket.checkDirectory()
        let address = try socket.address
        if try socket.checkSocketFile() {
            do throws(UnixError) {
                let probe = try UnixSocket.connect(to: address, nonBlocking: true)
                let pid = (try? PeerCredentials.of(probe).pid).map { " (pid \($0))" } ?? ""
                close(probe)
                throw UnixError(.closed, "an agent is already listening on \(socket.path)\(pid)")
            } catch where error.code == .closed {
                throw AgentError(.alreadyRunning, error.detail)
            } catch where error.errno == ECONNREFUSED {
                unlink(socket.path)
            } catch where error.errno == EAGAIN {
                throw AgentError(.alreadyRunning, "an agent is already listening on \(socket.path) (its backlog is full)")
            } catch {
                throw AgentError(.systemCall, "cannot check \(socket.path): \(error.detail)")
            }
        }
        do throws(UnixError) {
            return try UnixSocket.listen(at: address, replacingStale: false, mode: 0o600)
        } catch {
            throw AgentError(.systemCall, "cannot listen on \(socket.path): \(error.detail)")
        }
    }

    /// Serves until `stop()`; then removes the socket file if it made it.
    public func run() async {
        log.record("started", ["socket": .string(configuration.socket.path), "pid": .integer(Int64(getpid())), "uid": .integer(Int64(uid)),
                               "rate": .string(configuration.rate.description), "burst": .integer(Int64(configuration.burst)),
                               "socket_activated": .bool(!createdSocketFile)])
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            PosixThread.detach(name: "usp-agent-accept") { [self] in
                acceptLoop()
                done.resume()
            }
        }
        if createdSocketFile { unlink(configuration.socket.path) }
        close(listener)
        var fields: [String: JSONValue] = ["open_streams": .integer(Int64(table.list().count))]
        let signal = stoppedBy.load(ordering: .sequentiallyConsistent)
        if signal != 0 { fields["signal"] = .string(Self.signalName(signal)) }
        log.record("stopped", fields)
    }

    private static func signalName(_ signal: CInt) -> String {
        switch signal {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGHUP: "SIGHUP"
        default: "signal \(signal)"
        }
    }

    deinit {
        // Here, not at the end of run(): a stop() racing with the end of run() may still write.
        wake.close()
    }

    /// Stops accepting (from any thread or a signal handler's queue); streams being relayed go on
    /// until the process exits.
    public func stop() {
        guard !stopping.exchange(true, ordering: .sequentiallyConsistent) else { return }
        wake.post(0)
    }

    /// The streams being relayed now.
    public func streams() -> [AgentStreamInfo] { table.list() }

    private func acceptLoop() {
        while !stopping.load(ordering: .sequentiallyConsistent) {
            guard waitForConnection() else { return }
            let fd: CInt
            do throws(UnixError) {
                fd = try UnixSocket.accept(listener)
            } catch {
                if stopping.load(ordering: .sequentiallyConsistent) { return }
                // Out of descriptors (or a transient failure): back off instead of spinning.
                log.record("accept_failed", ["message": .string(error.detail)])
                usleep(100_000)
                continue
            }
            if pending.add(1, ordering: .sequentiallyConsistent).newValue > configuration.maximumPending {
                pending.subtract(1, ordering: .sequentiallyConsistent)
                let peer = (try? PeerProgram.of(fd)) ?? PeerProgram(uid: 0, gid: 0, pid: 0, executable: "unknown")
                refuse(fd, peer, AgentError(.busy, "the agent is serving \(configuration.maximumPending) requests already; try again"))
                close(fd)
                continue
            }
            PosixThread.detach(name: "usp-agent-request") { [self] in
                serve(fd)
                close(fd)
                pending.subtract(1, ordering: .sequentiallyConsistent)
            }
        }
    }

    /// Waits until a connection is there to accept (true) or `stop()` was called (false).
    private func waitForConnection() -> Bool {
        while true {
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, -1)
            if fds[1].revents != 0 {
                // A stop signal (its number) or stop() (0).
                if let signal = wake.drain().first(where: { $0 != 0 }) { stoppedBy.store(signal, ordering: .sequentiallyConsistent) }
                stopping.store(true, ordering: .sequentiallyConsistent)
                return false
            }
            if stopping.load(ordering: .sequentiallyConsistent) { return false }
            if n > 0, fds[0].revents != 0 { return true }
            if n < 0, errno != EINTR {
                log.record("accept_failed", ["message": .string("poll: \(String(cString: strerror(errno)))")])
                usleep(100_000)
            }
        }
    }

    // MARK: - One request

    private func serve(_ fd: CInt) {
        let peer: PeerProgram
        do throws(UnixError) {
            peer = try PeerProgram.of(fd)
        } catch {
            log.record("refused", ["code": .string(AgentError.Code.systemCall.rawValue), "message": .string(error.detail)])
            return
        }
        guard peer.uid == uid else {
            // Its request is read (and dropped) first: closing with it unread would reset the
            // connection, and the program would get a broken pipe instead of this answer.
            try? UnixSocket.setTimeouts(fd, seconds: configuration.requestTimeout)
            _ = try? AgentFrame.read(fd)
            refuse(fd, peer, AgentError(.uidMismatch, "uid \(peer.uid) is not the agent's uid \(uid); the agent serves only its own user"))
            return
        }
        try? UnixSocket.setTimeouts(fd, seconds: configuration.requestTimeout)
        let request: AgentRequest
        do throws(AgentError) {
            request = try AgentRequest.parse(try AgentFrame.read(fd))
        } catch where error.code == .endOfFile {
            return
        } catch {
            refuse(fd, peer, error)
            return
        }
        switch request.operation {
        case .status:
            respond(fd, .status(AgentStatus(pid: getpid(), streams: table.list())))
        case .open(let open):
            serveOpen(fd, peer.attributed(ownExecutable: ownExecutable), open)
        }
    }

    private func serveOpen(_ fd: CInt, _ peer: PeerProgram, _ open: AgentRequest.Open) {
        var what: [String: JSONValue] = ["server": .string(open.server.hostPort), "application": .string(open.application)]
        let key = AgentRateLimiter.Key(uid: peer.uid, executable: peer.executable)
        guard limiter.withLock({ $0.allow(key, now: Self.monotonicNow()) }) else {
            let r = limiter.withLock { $0.rate }
            refuse(fd, peer, AgentError(.rateLimited, "\(peer.executable) (uid \(peer.uid)) opened more than \(r) streams (burst \(configuration.burst)); try again later"), what)
            return
        }
        let stream: USPStream
        switch Self.wait({ [opener] () async throws(AgentError) -> USPStream in try await opener.open(open) }) {
        case .success(let s): stream = s
        case .failure(let error):
            refuse(fd, peer, error, what)
            return
        }
        let pair: SocketPair
        do throws(UnixError) {
            pair = try SocketPair.make()
        } catch {
            refuse(fd, peer, AgentError(.systemCall, "socketpair: \(error.detail)"), what)
            Task { await stream.close() }
            return
        }
        let entry = AgentStreamTable.Entry(program: peer, server: open.server.hostPort, application: open.application, tokenID: stream.tokenID,
                                           openedAt: Date(), counters: RelayCounters())
        let id = table.add(entry)
        let response = AgentResponse.opened(stream: id, tokenID: stream.tokenID, server: open.server.hostPort, application: open.application)
        do throws(UnixError) {
            try LengthPrefixedMessage.write(fd, response.encoded(), descriptor: pair.second)
        } catch {
            close(pair.second)
            close(pair.first)
            table.remove(id)
            log.record("refused", what.merging(peer.json) { a, _ in a }.merging(["code": .string("program_gone"), "message": .string("cannot send the stream: \(error.detail)")]) { a, _ in a })
            Task { await stream.close() }
            return
        }
        close(pair.second)
        what.merge(peer.json) { a, _ in a }
        what["stream"] = .integer(Int64(id))
        what["token_id"] = stream.tokenID.map(JSONValue.string) ?? .null
        log.record("open", what)
        let logged = what
        Task { [self] in await relay(pair.first, stream: stream, id: id, entry: entry, fields: logged) }
    }

    private func relay(_ fd: CInt, stream: USPStream, id: Int, entry: AgentStreamTable.Entry, fields: [String: JSONValue]) async {
        var result = "ok"
        do {
            let channel = try await StreamRelay.channel(adopting: fd, on: MultiThreadedEventLoopGroup.singleton.next())
            try await channel.executeThenClose { inbound, outbound in
                try await StreamRelay.run(inbound: inbound, outbound: outbound, stream: stream, counters: entry.counters)
            }
        } catch {
            result = (error as? USPClientError)?.message ?? "\(error)"
            await stream.close()
        }
        table.remove(id)
        var closed = fields
        closed["bytes_sent"] = .integer(Int64(entry.counters.bytesSent))
        closed["bytes_received"] = .integer(Int64(entry.counters.bytesReceived))
        closed["duration"] = .number((Date().timeIntervalSince(entry.openedAt) * 1000).rounded() / 1000)
        closed["result"] = .string(result)
        log.record("close", closed)
    }

    // MARK: - Answers

    private func respond(_ fd: CInt, _ response: AgentResponse) {
        try? LengthPrefixedMessage.write(fd, response.encoded())
    }

    private func refuse(_ fd: CInt, _ peer: PeerProgram, _ error: AgentError, _ what: [String: JSONValue] = [:]) {
        var fields = what.merging(peer.json) { a, _ in a }
        fields["code"] = .string(error.code.rawValue)
        fields["message"] = .string(error.message)
        log.record("refused", fields)
        respond(fd, .failed(error))
    }

    /// Runs `body` on the concurrency pool and waits for it on this (request) thread.
    private static func wait<T: Sendable>(_ body: @escaping @Sendable () async throws(AgentError) -> T) -> Result<T, AgentError> {
        let box = Mutex<Result<T, AgentError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let r: Result<T, AgentError>
            do throws(AgentError) { r = .success(try await body()) } catch { r = .failure(error) }
            box.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        return box.withLock { $0! }
    }

    static func monotonicNow() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}
