#if canImport(Glibc)
import Glibc
#endif
import USPCore
import USPUnix

/// The local program an agent stream is for: SO_PEERCRED's uid, gid and pid, and the executable
/// `/proc/PID/exe` points to (read right after accept; "unknown" when the kernel does not say,
/// e.g. a process of another user seen by an unprivileged agent).
///
/// When the peer is `usp` itself running on someone's behalf (`usp connect` as ssh's
/// ProxyCommand, or under git), the program is the one that started it: see `attributed`.
/// `via` then names the `usp` process the request came through.
public struct PeerProgram: Hashable, Sendable {
    public var uid: uid_t
    public var gid: gid_t
    public var pid: pid_t
    public var executable: String
    /// The `usp` process the request came through, when the program is its parent.
    public var via: Via?

    public struct Via: Hashable, Sendable {
        public var pid: pid_t
        public var executable: String
    }

    public init(uid: uid_t, gid: gid_t, pid: pid_t, executable: String, via: Via? = nil) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.executable = executable
        self.via = via
    }

    /// The peer of `socket` as the kernel reports it (no attribution).
    public static func of(_ socket: CInt) throws(UnixError) -> PeerProgram {
        let c = try PeerCredentials.of(socket)
        return PeerProgram(uid: c.uid, gid: c.gid, pid: c.pid, executable: executable(of: c.pid))
    }

    static func executable(of pid: pid_t) -> String {
        ProcessExecutable.path(of: pid) ?? "unknown"
    }

    /// The program to account a request to. Everything is read from /proc, nothing from the
    /// request:
    /// - a peer that is not `usp` (not the agent's own executable, nor a file named `usp`) is the
    ///   program;
    /// - a `usp` peer running `usp forward` is the program (a forward serves whoever connects to
    ///   its port, so it has no caller to speak for);
    /// - any other `usp` peer (`usp connect`) speaks for its parent, when the parent runs as the
    ///   same uid, is not pid 1 and its executable can be read; the parent is the program, and
    ///   `via` the `usp` process. Otherwise the `usp` peer is the program.
    ///
    /// `ownExecutable` is the agent's own binary (`/proc/self/exe`).
    public func attributed(ownExecutable: String?, proc: ProcReader = ProcReader()) -> PeerProgram {
        guard Self.isUSP(executable, ownExecutable: ownExecutable), proc.subcommand(pid) != "forward",
              let parent = proc.parent(pid), parent > 1, proc.uid(parent) == uid,
              let parentExecutable = proc.executable(parent) else { return self }
        return PeerProgram(uid: uid, gid: gid, pid: parent, executable: parentExecutable, via: Via(pid: pid, executable: executable))
    }

    static func isUSP(_ executable: String, ownExecutable: String?) -> Bool {
        executable == ownExecutable || executable.split(separator: "/").last == "usp"
    }

    /// For log lines and status.
    public var json: [String: JSONValue] {
        var o: [String: JSONValue] = ["uid": .integer(Int64(uid)), "pid": .integer(Int64(pid)), "executable": .string(executable)]
        if let via {
            o["via_pid"] = .integer(Int64(via.pid))
            o["via_executable"] = .string(via.executable)
        }
        return o
    }

    public var description: String {
        "pid \(pid) (\(executable), uid \(uid))" + (via.map { " through pid \($0.pid) (\($0.executable))" } ?? "")
    }
}

/// What `PeerProgram.attributed` reads of a process, from /proc (a test may answer instead).
public struct ProcReader: Sendable {
    public var parent: @Sendable (pid_t) -> pid_t?
    public var uid: @Sendable (pid_t) -> uid_t?
    public var executable: @Sendable (pid_t) -> String?
    public var arguments: @Sendable (pid_t) -> [String]?

    public init(parent: @escaping @Sendable (pid_t) -> pid_t? = ProcessExecutable.parent(of:),
                uid: @escaping @Sendable (pid_t) -> uid_t? = ProcessExecutable.uid(of:),
                executable: @escaping @Sendable (pid_t) -> String? = ProcessExecutable.path(of:),
                arguments: @escaping @Sendable (pid_t) -> [String]? = ProcessExecutable.arguments(of:)) {
        self.parent = parent
        self.uid = uid
        self.executable = executable
        self.arguments = arguments
    }

    /// The `usp` subcommand a process runs: its first argument that is neither an option nor the
    /// value of one of `usp`'s options that take a value (`--home`, `-F`, `-o`).
    func subcommand(_ pid: pid_t) -> String? {
        guard let args = arguments(pid) else { return nil }
        var i = 1
        while i < args.count {
            let a = args[i]
            if ["--home", "-F", "-o"].contains(a) {
                i += 2
                continue
            }
            if a.hasPrefix("-") {
                i += 1
                continue
            }
            return a
        }
        return nil
    }
}
