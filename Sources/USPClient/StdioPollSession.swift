import Glibc
import NIOCore
import USPCore
import USPNIO

/// `usp connect` on one thread: one `poll(2)` loop moves bytes between standard input and
/// output and a dedicated connection, driving `ClientSession` directly.
///
/// `usp connect` starts once per ssh ProxyCommand, git fetch or scripted call, so what it costs
/// is mostly its start: an event loop thread, the task threads of Swift concurrency and the hops
/// between them were about half of its CPU per connection. Here nothing starts a thread: the
/// arguments, the key files and message 1 are handled on the main thread while the SYN (sent
/// first, `EarlyConnection`) is on its way, and the same thread then relays, sealing each chunk
/// read from stdin and writing it to the socket in one go.
///
/// It does what `StdioApplicationSession` does for an application begun by name (the saved
/// login, the first bytes in message 1, a login the server no longer accepts forgotten and the
/// begin tried again, trust on first use), with the same messages. What needs an event loop or
/// another connection stays there: server keys from DNS (`canRun` is false), and the
/// explanations of a failure, which `Failure.explained()` gives asynchronously (the key probe
/// after a refused handshake, the menu after an unknown application name).
public enum StdioPollSession {
    /// Whether `run` can serve a connection to `server` with `options`: not when the URI pins no
    /// key and DNS may publish one for a host name (that lookup is asynchronous), nor with a local
    /// address to bind.
    public static func canRun(server: ServerURI, options: USPConnectionOptions) -> Bool {
        guard options.localAddress == nil, options.eventLoopGroup == nil else { return false }
        return server.serverKey != nil || server.hostIsAddress || !options.dns.enabled
    }

    /// Opens /dev/null on stdin, stdout or stderr where one is closed, as ssh does: otherwise the
    /// connection's socket could get number 0 or 1 and be read or written as stdin or stdout.
    /// Call it before any descriptor is opened.
    public static func ensureStandardDescriptors() {
        for fd in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] where fcntl(fd, F_GETFD) < 0 && errno == EBADF {
            let null = open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY)
            if null >= 0, null != fd {
                dup2(null, fd)
                close(null)
            }
        }
    }

    /// Why `run` failed, with what may explain it better.
    public struct Failure: Error, Sendable {
        public let error: USPClientError
        let followUp: FollowUp?

        enum FollowUp: Sendable {
            /// A handshake refused with an expected key: probe which key the server presents.
            case probe(Plan)
            /// The application was refused by name: the menu says what there is.
            case menu(name: String, server: ServerURI, home: ClientHome, options: USPConnectionOptions)
        }

        init(_ error: USPClientError, followUp: FollowUp? = nil) {
            self.error = error
            self.followUp = followUp
        }

        /// The error to report: `error`, or the better one the follow-up finds.
        public func explained() async -> USPClientError {
            switch followUp {
            case nil:
                return error
            case .probe(let plan):
                return await plan.explainRejected(error)
            case .menu(let name, let server, let home, let options):
                do {
                    try await DedicatedBegin.explainUnknown(name, server: server, home: home, options: options)
                } catch let e as USPClientError {
                    return e
                } catch {}
                return self.error
            }
        }
    }

    /// Opens `application` on `server` (begun by name, with the saved login unless anonymous) and
    /// relays stdin and stdout until the server finishes the stream. Returns when it did; throws
    /// when something failed. `notice` hears what a person should know on the way.
    public static func run(_ application: String, server: ServerURI, home: ClientHome, options: USPConnectionOptions,
                           earlyWait: Duration, notice: (String) -> Void) throws(Failure) {
        // A reader gone from stdout is an EPIPE to report, not a signal that kills us.
        signal(SIGPIPE, SIG_IGN)
        // Ctrl-C and the like must end the relay even when the parent spawned us from a thread
        // that blocks them (the mask is inherited): ignoring stays possible, blocking is undone.
        var stops = sigset_t()
        sigemptyset(&stops)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&stops, s) }
        sigprocmask(SIG_UNBLOCK, &stops, nil)
        let plan: Plan
        var token: String?
        do throws(USPClientError) {
            plan = try Plan(server: server, home: home, options: options)
            token = options.anonymous ? nil : try home.loadLogin(for: server)?.token
        } catch {
            throw Failure(error)
        }
        let stdio = StdioEnds()
        defer { stdio.restore() }
        let name = ClientStart.Application(name: application)
        let budget = USPConnection.earlyDataBudget(plan.pattern, application: name, authorizationToken: token != nil)
        let (first, inputEnded) = stdio.readFirst(upTo: budget, waitingAtMost: earlyWait)
        var early = options.earlyConnection
        while true {
            let start = ClientStart(authorizationToken: token, application: name, initialData: first)
            let attempt = PollAttempt(plan: plan, start: start, stdio: stdio, inputEnded: inputEnded)
            do throws(USPClientError) {
                try attempt.run(early: early)
                return
            } catch {
                early = nil
                if let refusal = attempt.trust.refusal { throw Failure(refusal) }
                if error.code == .loginExpired, token != nil {
                    _ = home.removeLogin(for: server)
                    notice(USPConnection.savedLoginRemoved(error))
                    token = nil
                    continue
                }
                if plan.needsProbe(error) { throw Failure(error, followUp: .probe(plan)) }
                if let code = error.wireCode, [.authorizationMissing, .unknownApplication, .invalidRequestBody].contains(code) {
                    let e = ErrorText.applicationRequest(WireError(code, error.message), name: application, offer: nil, server: server, byName: true)
                    guard code != .invalidRequestBody else { throw Failure(e) }
                    var o = options
                    o.authorizationToken = token
                    o.earlyConnection = nil
                    throw Failure(e, followUp: .menu(name: application, server: server, home: home, options: o))
                }
                throw Failure(error)
            }
        }
    }
}

/// Standard input and output as the poll loop uses them: pipes and sockets are made
/// non-blocking for the run (and restored after), so that a large read or write never stalls the
/// loop; terminals and files stay as they are (poll reports them ready, and their reads and
/// writes are short or do not block).
final class StdioEnds {
    let input: CInt
    let output: CInt
    private var saved: [(CInt, CInt)] = []

    init(input: CInt = STDIN_FILENO, output: CInt = STDOUT_FILENO) {
        self.input = input
        self.output = output
        for fd in Set([input, output]) where Self.isPipeOrSocket(fd) {
            let flags = fcntl(fd, F_GETFL)
            guard flags >= 0, flags & O_NONBLOCK == 0 else { continue }
            if fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 { saved.append((fd, flags)) }
        }
        for fd in Set([input, output]) { Self.growPipe(fd) }
    }

    /// A pipe's buffer is 64 KiB by default: a bulk transfer through it then takes a read (and a
    /// wake-up of the program at the other end) per 64 KiB. Grown to 1 MiB (the unprivileged
    /// limit, /proc/sys/fs/pipe-max-size), both ends make a quarter of the system calls. Only
    /// grows, and a refusal (a lower limit, the user's pipe quota) changes nothing.
    static let pipeSize: CInt = 1 << 20
    /// Linux's fcntl commands (fcntl.h defines them only under _GNU_SOURCE).
    static let setPipeSize: CInt = 1031, getPipeSize: CInt = 1032

    static func growPipe(_ fd: CInt) {
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFIFO else { return }
        let current = fcntl(fd, getPipeSize)
        guard current >= 0, current < pipeSize else { return }
        _ = fcntl(fd, setPipeSize, pipeSize)
    }

    func restore() {
        for (fd, flags) in saved { _ = fcntl(fd, F_SETFL, flags) }
        saved = []
    }

    static func isPipeOrSocket(_ fd: CInt) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        let type = st.st_mode & S_IFMT
        return type == S_IFIFO || type == S_IFSOCK
    }

    /// The bytes stdin has within `wait` (at most `limit`), and whether it ended.
    func readFirst(upTo limit: Int, waitingAtMost wait: Duration) -> ([UInt8], Bool) {
        guard limit > 0 else { return ([], false) }
        let (seconds, attoseconds) = wait.components
        let ms = CInt(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        var p = pollfd(fd: input, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, ms) > 0 else { return ([], false) }
        var bytes = [UInt8](repeating: 0, count: limit)
        let n = bytes.withUnsafeMutableBytes { read(input, $0.baseAddress, limit) }
        if n > 0 { return (Array(bytes[..<n]), false) }
        if n == 0 || (errno != EAGAIN && errno != EINTR) { return ([], true) }
        return ([], false)
    }
}
