import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process, started with `ProcessSpawn` (fork + execve) in its own process group and
/// confined as its `Confinement` says; its stream either on pipes (stdin and stdout) or on a
/// connected socket at fd 3 (systemd socket-activation style).
///
/// Every child is reaped by `ChildReaper`, which calls `onExit` once with how it ended (nil when
/// something else in the process reaped it first). Signals go to the process group only while
/// the child is not reaped, under the same lock as the reaping, so a recycled pid is never hit.
public final class ChildProcess: Sendable {
    /// Where the child's stream goes.
    public enum Stream: Sendable {
        /// Pipes on 0 and 1; `stdinWrite` and `stdoutRead` are the parent's ends.
        case pipes
        /// This socket (the child's end of a socketpair) on fd 3, with LISTEN_FDS=1, LISTEN_PID and
        /// LISTEN_FDNAMES=usp; stdin is /dev/null and stdout goes to the parent's stderr. The caller
        /// keeps ownership of the descriptor and closes it after `spawn`.
        case socket(CInt)
    }

    /// What the child may not do, set between fork and exec (see `ProcessSpawn`).
    public struct Confinement: Hashable, Sendable {
        /// A network namespace of its own: no network but what it is given.
        public var newNetworkNamespace: Bool
        /// The group to run as (supplementary groups cleared), or nil for the parent's.
        public var group: UInt32?
        /// The user to run as, or nil for the parent's.
        public var user: UInt32?
        public var resourceLimits: [ProcessSpawn.ResourceLimit]

        public init(newNetworkNamespace: Bool = false, group: UInt32? = nil, user: UInt32? = nil,
                    resourceLimits: [ProcessSpawn.ResourceLimit] = []) {
            self.newNetworkNamespace = newNetworkNamespace
            self.group = group
            self.user = user
            self.resourceLimits = resourceLimits
        }
    }

    /// Called once when the child is reaped: how it ended (nil: reaped elsewhere, unknown), and
    /// whether the parent had signalled it to stop before.
    public typealias ExitHandler = @Sendable (_ pid: pid_t, _ exit: ProcessExit?, _ stopRequested: Bool) -> Void

    public let pid: pid_t
    /// The parent's pipe ends in `.pipes` mode, else -1.
    public let stdinWrite: CInt
    public let stdoutRead: CInt

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

    /// Starts `command` (its program looked up in the command's own PATH) and has it reaped.
    public static func spawn(_ command: [String], environment: [String: String], stream: Stream = .pipes,
                             confinement: Confinement = Confinement(), onExit: ExitHandler? = nil) throws(UnixError) -> ChildProcess {
        guard let program = command.first, !program.isEmpty else { throw UnixError(.systemCall, errno: ENOENT, "exec: no program") }
        // execve does not search PATH: the search is done here, with the command's own PATH.
        guard let path = ExecutableSearch.find(program, path: environment["PATH"] ?? "") else {
            throw UnixError(.systemCall, errno: ENOENT, "exec \(program): not found or not executable")
        }
        var spawn = ProcessSpawn(path: path, arguments: command, environment: environment)
        var ours: [CInt] = []       // the parent's ends, returned
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
        spawn.newNetworkNamespace = confinement.newNetworkNamespace
        spawn.group = confinement.group
        spawn.user = confinement.user
        spawn.resourceLimits = confinement.resourceLimits
        let pid: pid_t
        do throws(UnixError) { pid = try spawn.run() } catch {
            for fd in ours { close(fd) }
            throw error
        }
        let child = ChildProcess(pid: pid, stdinWrite: ours.first ?? -1, stdoutRead: ours.last ?? -1, onExit: onExit)
        ChildReaper.shared.watch(child)
        return child
    }

    /// Reaps the child if it has exited (once); true when it is reaped, now or before.
    @discardableResult
    public func reapIfExited() -> Bool {
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

    public var isReaped: Bool { state.withLock { $0.reaped } }

    /// True when the child is reaped and ended by a signal or with a non-zero status that the
    /// parent did not ask for (a crash, a kill from outside, RLIMIT_CPU).
    public var failed: Bool {
        state.withLock { s in
            guard s.reaped, !s.stopRequested, let exit = s.exit else { return false }
            return !exit.isSuccess
        }
    }

    /// Sends `signal` to the child's process group, unless the child is already reaped.
    public func signalGroup(_ signal: CInt) {
        state.withLock { s in
            guard !s.reaped else { return }
            s.stopRequested = true
            kill(-pid, signal)
        }
    }
}
