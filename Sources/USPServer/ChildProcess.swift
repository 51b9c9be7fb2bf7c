import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import USPConfig
import USPCore
import USPNIO
import USPUnix

#if canImport(Glibc)
import Glibc
#endif

/// An exec'd application's process, started with `ProcessSpawn` (fork + execve) in its own
/// process group and confined by the application's `Isolation`; its stream either on pipes
/// (stdin and stdout) or on a connected socket at fd 3 (systemd socket-activation style).
///
/// Every child is reaped by `ChildReaper`, which calls `onExit` once with how it ended (nil when
/// something else in the process reaped it first). Signals go to the process group only while
/// the child is not reaped, under the same lock as the reaping, so a recycled pid is never hit.
final class ChildProcess: Sendable {
    /// Where the child's stream goes.
    enum Stream {
        /// Pipes on 0 and 1; `stdinWrite` and `stdoutRead` are the daemon's ends.
        case pipes
        /// This socket (the child's end of a socketpair) on fd 3, with LISTEN_FDS=1, LISTEN_PID and
        /// LISTEN_FDNAMES=usp; stdin is /dev/null and stdout goes to the daemon's stderr. The caller
        /// keeps ownership of the descriptor and closes it after `spawn`.
        case socket(CInt)
    }

    /// Called once when the child is reaped: how it ended (nil: reaped elsewhere, unknown), and
    /// whether uspd had signalled it to stop before.
    typealias ExitHandler = @Sendable (_ pid: pid_t, _ exit: ProcessExit?, _ stopRequested: Bool) -> Void

    let pid: pid_t
    /// The daemon's pipe ends in `.pipes` mode, else -1.
    let stdinWrite: CInt
    let stdoutRead: CInt

    private struct State {
        var reaped = false
        var stopRequested = false
        /// How it ended, once reaped (nil also when reaped elsewhere).
        var exit: ProcessExit?
        var onExit: ExitHandler?
    }
    private let state: Mutex<State>

    private init(pid: pid_t, stdinWrite: CInt, stdoutRead: CInt, onExit: ExitHandler?) {
        self.pid = pid
        self.stdinWrite = stdinWrite
        self.stdoutRead = stdoutRead
        self.state = Mutex(State(onExit: onExit))
    }

    static func spawn(_ command: [String], environment: [String: String], stream: Stream = .pipes, isolation: Isolation = Isolation(),
                      onExit: ExitHandler? = nil) throws(UnixError) -> ChildProcess {
        guard let program = command.first, !program.isEmpty else { throw UnixError(.systemCall, errno: ENOENT, "exec: no program") }
        // execve does not search PATH: the search is done here, with the command's own PATH.
        guard let path = ExecutableSearch.find(program, path: environment["PATH"] ?? "") else {
            throw UnixError(.systemCall, errno: ENOENT, "exec \(program): not found or not executable")
        }
        var spawn = ProcessSpawn(path: path, arguments: command, environment: environment)
        var ours: [CInt] = []       // the daemon's ends, returned
        var theirs: [CInt] = []     // the child's ends, closed here after the spawn
        defer { for fd in theirs { close(fd) } }
        switch stream {
        case .pipes:
            let input = try ProcessSpawn.pipe()
            let output: (read: CInt, write: CInt)
            do throws(UnixError) { output = try ProcessSpawn.pipe() } catch {
                close(input.read); close(input.write)
                throw error
            }
            ours = [input.write, output.read]
            theirs = [input.read, output.write]
            spawn.standardInput = input.read
            spawn.standardOutput = output.write
        case .socket(let socket):
            spawn.descriptor3 = socket
            spawn.setListenPID = true
            spawn.environment["LISTEN_FDS"] = "1"
            spawn.environment["LISTEN_FDNAMES"] = "usp"
        }
        spawn.newNetworkNamespace = isolation.sandbox == .noNetwork
        spawn.group = isolation.group?.id
        spawn.user = isolation.user?.id
        spawn.resourceLimits = Self.resourceLimits(isolation.rlimits)
        let pid: pid_t
        do throws(UnixError) { pid = try spawn.run() } catch {
            for fd in ours { close(fd) }
            throw error
        }
        let child = ChildProcess(pid: pid, stdinWrite: ours.first ?? -1, stdoutRead: ours.last ?? -1, onExit: onExit)
        ChildReaper.shared.watch(child)
        return child
    }

    static func resourceLimits(_ r: Isolation.ResourceLimits) -> [ProcessSpawn.ResourceLimit] {
        var out: [ProcessSpawn.ResourceLimit] = []
        if let n = r.maxOpenFiles { out.append(.openFiles(n)) }
        if let n = r.maxMemory { out.append(.addressSpace(n)) }
        if let n = r.maxCPUSeconds { out.append(.cpuSeconds(n)) }
        if let n = r.maxProcesses { out.append(.processes(n)) }
        return out
    }

    /// Reaps the child if it has exited (once); true when it is reaped, now or before.
    @discardableResult
    func reapIfExited() -> Bool {
        let outcome = state.withLock { s -> (reapedNow: Bool, exit: ProcessExit?, handler: ExitHandler?, requested: Bool) in
            guard !s.reaped else { return (false, nil, nil, false) }
            var status: CInt = 0
            let r = waitpid(pid, &status, WNOHANG)
            guard r == pid || (r < 0 && errno == ECHILD) else { return (false, nil, nil, false) }
            s.reaped = true
            s.exit = r == pid ? ProcessExit(waitStatus: status) : nil
            defer { s.onExit = nil }
            return (true, s.exit, s.onExit, s.stopRequested)
        }
        if outcome.reapedNow { outcome.handler?(pid, outcome.exit, outcome.requested) }
        return isReaped
    }

    var isReaped: Bool { state.withLock { $0.reaped } }

    /// True when the child is reaped and ended by a signal or with a non-zero status that uspd
    /// did not ask for (a crash, a kill from outside, RLIMIT_CPU).
    var failed: Bool {
        state.withLock { s in
            guard s.reaped, !s.stopRequested, let exit = s.exit else { return false }
            return !exit.isSuccess
        }
    }

    /// Sends `signal` to the child's process group, unless the child is already reaped.
    func signalGroup(_ signal: CInt) {
        state.withLock { s in
            guard !s.reaped else { return }
            s.stopRequested = true
            kill(-pid, signal)
        }
    }

    /// Stops the child once its stream is over: SIGTERM to its process group after `grace` (2 s
    /// when graceful, else at once) unless it exited by itself, and SIGKILL three seconds later if
    /// it is still there. `ChildReaper` reaps it.
    func stop(graceful: Bool, on loop: any EventLoop, logger: Logger) {
        let termAfter: Int64 = graceful ? 2000 : 0
        let child = self
        loop.scheduleTask(in: .milliseconds(termAfter)) {
            guard !child.reapIfExited() else { return }
            child.signalGroup(SIGTERM)
            loop.scheduleTask(in: .seconds(3)) {
                guard !child.reapIfExited() else { return }
                logger.notice("pid \(child.pid) ignored SIGTERM, killing it")
                child.signalGroup(SIGKILL)
            }
        }
    }
}

/// Reaps every exec'd child: a sweep of `waitpid(pid, WNOHANG)` over the children still running,
/// every 100 ms while there are any. Polling rather than SIGCHLD: a SIGCHLD handler is
/// process-wide state that a library (or a test harness) may also claim, and a signal can be
/// coalesced; a sweep of the daemon's own pids cannot miss one or take another's child.
final class ChildReaper: Sendable {
    static let shared = ChildReaper()
    static let interval: DispatchTimeInterval = .milliseconds(100)

    private let children = Mutex<(running: [pid_t: ChildProcess], scheduled: Bool)>(([:], false))
    private let queue = DispatchQueue(label: "uspd.reaper")

    func watch(_ child: ChildProcess) {
        let schedule = children.withLock { c -> Bool in
            c.running[child.pid] = child
            defer { c.scheduled = true }
            return !c.scheduled
        }
        if schedule { queue.asyncAfter(deadline: .now() + Self.interval) { [self] in sweep() } }
    }

    /// Children not yet reaped.
    var count: Int { children.withLock { $0.running.count } }

    func sweep() {
        let running = children.withLock { Array($0.running.values) }
        let reaped = running.filter { $0.reapIfExited() }
        let again = children.withLock { c -> Bool in
            // Only that child: its pid may already belong to a new one.
            for child in reaped where c.running[child.pid] === child { c.running[child.pid] = nil }
            c.scheduled = !c.running.isEmpty
            return c.scheduled
        }
        if again { queue.asyncAfter(deadline: .now() + Self.interval) { [self] in sweep() } }
    }
}

/// execvp's search, done before spawning so that a missing program is an error of the launch
/// rather than an exit status 127.
enum ExecutableSearch {
    static func find(_ program: String, path: String) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + program
            var info = stat()
            if stat(candidate, &info) == 0, info.st_mode & S_IFMT == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}
