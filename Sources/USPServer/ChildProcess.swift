import Foundation
import Logging
import NIOCore
import NIOPosix
import USPCore
import USPNIO
import USPUnix

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn in its own process group, its stream either on pipes
/// (stdin and stdout) or on a connected socket at fd 3 (systemd socket-activation style).
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

    let pid: pid_t
    /// The daemon's pipe ends in `.pipes` mode, else -1.
    let stdinWrite: CInt
    let stdoutRead: CInt

    private init(pid: pid_t, stdinWrite: CInt, stdoutRead: CInt) {
        self.pid = pid
        self.stdinWrite = stdinWrite
        self.stdoutRead = stdoutRead
    }

    /// The shell script that sets LISTEN_PID for a `.socket` child: posix_spawn learns the pid only
    /// once the child runs, but `$$` is the shell's own pid and `exec` keeps it, so the program
    /// sees its own pid in LISTEN_PID, as sd_listen_fds(3) checks. It costs one exec of /bin/sh.
    static let listenPIDScript = "LISTEN_PID=$$; export LISTEN_PID; exec \"$@\""

    static func spawn(_ command: [String], environment: [String: String], stream: Stream = .pipes) throws(UnixError) -> ChildProcess {
        guard let program = command.first, !program.isEmpty else { throw UnixError(.systemCall, errno: ENOENT, "exec: no program") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var ours: [CInt] = []       // the daemon's ends, returned
        var theirs: [CInt] = []     // the child's ends, closed here after the spawn
        defer { for fd in theirs { close(fd) } }
        var argvStrings = command
        var env = environment
        switch stream {
        case .pipes:
            var stdinPipe: [CInt] = [-1, -1]
            var stdoutPipe: [CInt] = [-1, -1]
            guard SpawnSymbols.pipe2(&stdinPipe, O_CLOEXEC) == 0 else { throw .call("pipe2") }
            guard SpawnSymbols.pipe2(&stdoutPipe, O_CLOEXEC) == 0 else {
                let e = UnixError.call("pipe2")
                close(stdinPipe[0]); close(stdinPipe[1])
                throw e
            }
            ours = [stdinPipe[1], stdoutPipe[0]]
            theirs = [stdinPipe[0], stdoutPipe[1]]
            posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
            posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
            // Nothing of the daemon's (listeners, other sessions, the database) leaks into the child.
            if let closefrom = SpawnSymbols.addclosefrom { _ = closefrom(&actions, 3) }
        case .socket(let socket):
            guard ExecutableSearch.find(program, path: env["PATH"] ?? "") != nil else {
                throw UnixError(.systemCall, errno: ENOENT, "exec \(program): not found or not executable")
            }
            // dup2 onto the same number would keep FD_CLOEXEC; a copy above 3 avoids the case.
            var source = socket
            if socket <= 3 {
                source = try CloseOnExec.duplicate(socket, atLeast: 4)
                theirs.append(source)
            }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, 2, 1)
            posix_spawn_file_actions_adddup2(&actions, source, 3)
            if let closefrom = SpawnSymbols.addclosefrom { _ = closefrom(&actions, 4) }
            env["LISTEN_FDS"] = "1"
            env["LISTEN_FDNAMES"] = "usp"
            env["LISTEN_PID"] = nil
            argvStrings = ["/bin/sh", "-c", Self.listenPIDScript, program] + command
        }

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

        let argv = argvStrings.map { strdup($0) } + [nil]
        let envp = env.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argvStrings[0], &actions, &attributes, argv, envp)
        guard rc == 0 else {
            for fd in ours { close(fd) }
            throw .call("posix_spawn \(program)", errno: rc)
        }
        return ChildProcess(pid: pid, stdinWrite: ours.first ?? -1, stdoutRead: ours.last ?? -1)
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

/// execvp's search, done before spawning through /bin/sh so that a missing program is an error
/// of the launch rather than a shell's exit status 127.
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
