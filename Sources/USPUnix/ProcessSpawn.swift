import CUSPSpawn

#if canImport(Glibc)
import Glibc
#endif

/// Starts a program with fork and execve through `usp_spawn` (CUSPSpawn, where the why is), for
/// what posix_spawn cannot do: a network namespace of its own, resource limits, another user and
/// group. Returns once the program runs; every failure before that is a `UnixError` naming the
/// step (`setuid: Operation not permitted`), and the failed child is already reaped.
public struct ProcessSpawn: Sendable {
    /// A resource limit, set as both soft and hard limit.
    public struct ResourceLimit: Hashable, Sendable {
        public var resource: CInt
        public var name: String
        public var value: UInt64
        public init(resource: CInt, name: String, value: UInt64) {
            self.resource = resource
            self.name = name
            self.value = value
        }

        public static func openFiles(_ n: Int) -> Self { Self(resource: CInt(RLIMIT_NOFILE.rawValue), name: "RLIMIT_NOFILE", value: UInt64(n)) }
        public static func addressSpace(_ bytes: Int) -> Self { Self(resource: CInt(RLIMIT_AS.rawValue), name: "RLIMIT_AS", value: UInt64(bytes)) }
        public static func cpuSeconds(_ s: Int) -> Self { Self(resource: CInt(RLIMIT_CPU.rawValue), name: "RLIMIT_CPU", value: UInt64(s)) }
        public static func processes(_ n: Int) -> Self { Self(resource: CInt(__RLIMIT_NPROC.rawValue), name: "RLIMIT_NPROC", value: UInt64(n)) }
    }

    /// The program: a path (execve does not search PATH; see `ExecutableSearch`).
    public var path: String
    public var arguments: [String]
    /// `NAME=value` pairs, sorted by name for a stable order.
    public var environment: [String: String]
    /// Standard input; nil: /dev/null.
    public var standardInput: CInt?
    /// Standard output; nil: a copy of the daemon's standard error.
    public var standardOutput: CInt?
    /// Standard error; nil: the daemon's own.
    public var standardError: CInt?
    /// A session of its own (setsid) instead of a process group: a daemon, with no controlling
    /// terminal, that a terminal's hang-up does not reach.
    public var newSession = false
    /// A descriptor for fd 3 (socket activation), or nil.
    public var descriptor3: CInt?
    /// Sets `LISTEN_PID` to the child's own pid (sd_listen_fds(3) checks it).
    public var setListenPID = false
    public var newNetworkNamespace = false
    /// With `newNetworkNamespace`, when the daemon lacks CAP_SYS_ADMIN (not root): enter a user
    /// namespace too, in which the child keeps its uid and gid, so the network is still taken away.
    public var userNamespaceFallback = true
    /// (gid) with supplementary groups cleared.
    public var group: UInt32?
    public var user: UInt32?
    public var resourceLimits: [ResourceLimit] = []

    public init(path: String, arguments: [String], environment: [String: String]) {
        self.path = path
        self.arguments = arguments
        self.environment = environment
    }

    public func run() throws(UnixError) -> pid_t {
        let argv = arguments.map { strdup($0) } + [nil]
        var entries = environment.filter { $0.key != "LISTEN_PID" }.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") }
        // Room for the pid the child writes: "LISTEN_PID=" and up to 20 digits.
        let listenPID = setListenPID ? strdup("LISTEN_PID=" + String(repeating: "0", count: 20)) : nil
        if let listenPID { entries.append(listenPID) }
        let envp = entries + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        let limits = resourceLimits.map { usp_rlimit(resource: $0.resource, value: $0.value) }
        var pid: pid_t = 0
        var stage: CInt = 0
        var detail: CInt = 0
        let rc: CInt = path.withCString { cPath in
            argv.withUnsafeBufferPointer { argvBuffer in
                envp.withUnsafeBufferPointer { envpBuffer in
                    limits.withUnsafeBufferPointer { limitsBuffer in
                        var request = usp_spawn_request(
                            path: cPath, argv: argvBuffer.baseAddress, envp: envpBuffer.baseAddress,
                            stdin_fd: standardInput ?? -1, stdout_fd: standardOutput ?? -1, stream_fd: descriptor3 ?? -1,
                            stderr_fd: standardError ?? -1, new_session: newSession ? 1 : 0,
                            listen_pid: listenPID, new_network_namespace: newNetworkNamespace ? 1 : 0,
                            user_namespace_fallback: userNamespaceFallback ? 1 : 0,
                            set_groups: group == nil ? 0 : 1, gid: group ?? 0, set_user: user == nil ? 0 : 1, uid: user ?? 0,
                            rlimits: limitsBuffer.baseAddress, rlimit_count: CInt(limitsBuffer.count))
                        return usp_spawn(&request, &pid, &stage, &detail)
                    }
                }
            }
        }
        guard rc == 0 else { throw .call(Self.step(stage, detail: detail, limits: resourceLimits, spawn: self), errno: rc) }
        return pid
    }

    /// The name of the step that failed, as the message's prefix.
    static func step(_ stage: CInt, detail: CInt, limits: [ResourceLimit], spawn: ProcessSpawn) -> String {
        switch UInt32(stage) {
        case USP_SPAWN_STAGE_PIPE.rawValue: return "pipe2"
        case USP_SPAWN_STAGE_FORK.rawValue: return "fork"
        case USP_SPAWN_STAGE_DESCRIPTORS.rawValue: return "placing the stream on the child's descriptors"
        case USP_SPAWN_STAGE_RLIMIT.rawValue:
            let limit = limits.indices.contains(Int(detail)) ? limits[Int(detail)] : nil
            return "setrlimit \(limit.map { "\($0.name) \($0.value)" } ?? "?")"
        case USP_SPAWN_STAGE_NETWORK_NAMESPACE.rawValue: return "unshare(CLONE_NEWNET)"
        case USP_SPAWN_STAGE_USER_NAMESPACE.rawValue:
            return ["unshare(CLONE_NEWUSER|CLONE_NEWNET)", "writing /proc/self/setgroups", "writing /proc/self/uid_map",
                    "writing /proc/self/gid_map"][Int(max(0, min(3, detail)))]
        case USP_SPAWN_STAGE_GROUPS.rawValue: return "setgroups"
        case USP_SPAWN_STAGE_SETGID.rawValue: return "setgid \(spawn.group ?? 0)"
        case USP_SPAWN_STAGE_SETUID.rawValue: return "setuid \(spawn.user ?? 0)"
        case USP_SPAWN_STAGE_EXEC.rawValue: return "exec \(spawn.path)"
        case USP_SPAWN_STAGE_SESSION.rawValue: return "setsid"
        default: return "spawn \(spawn.path)"
        }
    }

    /// pipe2 with O_CLOEXEC: both ends close-on-exec from the start, so a process spawned at the
    /// same moment from another thread cannot inherit them. Returns (read end, write end).
    public static func pipe() throws(UnixError) -> (read: CInt, write: CInt) {
        var fds: [CInt] = [-1, -1]
        guard usp_pipe_cloexec(&fds) == 0 else { throw .call("pipe2") }
        return (fds[0], fds[1])
    }
}
