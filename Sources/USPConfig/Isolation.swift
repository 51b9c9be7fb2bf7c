/// How uspd confines an `exec` application's process (apps.d):
///
/// ```toml
/// [launch]
/// exec = ["/usr/local/bin/notes"]
/// sandbox = "no-network"        # a network namespace of its own: the stream is its only way out
/// user = "nobody"               # a name or a number; needs uspd to run as root
/// group = "nogroup"             # default: the user's primary group; supplementary groups are cleared
/// [rlimits]
/// max_open_files = 64           # RLIMIT_NOFILE
/// max_memory = 268435456        # RLIMIT_AS, bytes of address space
/// max_cpu_seconds = 60          # RLIMIT_CPU
/// max_processes = 32            # RLIMIT_NPROC: processes of the (target) user, all of them
/// ```
public struct Isolation: Hashable, Sendable {
    public enum Sandbox: String, Hashable, Sendable, CaseIterable {
        /// The daemon's own network.
        case none
        /// A new network namespace (unshare CLONE_NEWNET): only a loopback interface, down.
        case noNetwork = "no-network"
    }

    /// A user or group as written (`name`) and as resolved when the file was loaded (`id`).
    public struct Account: Hashable, Sendable {
        public var name: String
        public var id: UInt32
        public init(name: String, id: UInt32) {
            self.name = name
            self.id = id
        }
    }

    /// Resource limits, each set as both soft and hard limit in the child; nil leaves uspd's own.
    public struct ResourceLimits: Hashable, Sendable {
        /// RLIMIT_NOFILE: open descriptors (the stream's included).
        public var maxOpenFiles: Int?
        /// RLIMIT_AS: bytes of address space.
        public var maxMemory: Int?
        /// RLIMIT_CPU: seconds of CPU time; then SIGXCPU, and SIGKILL a second later.
        public var maxCPUSeconds: Int?
        /// RLIMIT_NPROC: processes (threads count) of the child's real user ID, counted over the
        /// whole system, not per session; not enforced for root.
        public var maxProcesses: Int?
        public init(maxOpenFiles: Int? = nil, maxMemory: Int? = nil, maxCPUSeconds: Int? = nil, maxProcesses: Int? = nil) {
            self.maxOpenFiles = maxOpenFiles
            self.maxMemory = maxMemory
            self.maxCPUSeconds = maxCPUSeconds
            self.maxProcesses = maxProcesses
        }

        public var isEmpty: Bool { self == ResourceLimits() }
    }

    public var sandbox: Sandbox
    /// The user to run as (its primary group unless `group` is set).
    public var user: Account?
    /// The group to run as.
    public var group: Account?
    public var rlimits: ResourceLimits

    public init(sandbox: Sandbox = .none, user: Account? = nil, group: Account? = nil, rlimits: ResourceLimits = ResourceLimits()) {
        self.sandbox = sandbox
        self.user = user
        self.group = group
        self.rlimits = rlimits
    }

    /// True when nothing is confined.
    public var isEmpty: Bool { self == Isolation() }
}
