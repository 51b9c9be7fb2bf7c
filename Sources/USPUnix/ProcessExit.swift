#if canImport(Glibc)
import Glibc
#endif

/// How a process ended, from a waitpid status.
public enum ProcessExit: Hashable, Sendable, CustomStringConvertible {
    case exited(CInt)
    case signaled(CInt, coreDumped: Bool)

    public init(waitStatus status: CInt) {
        if status & 0x7f == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signaled(status & 0x7f, coreDumped: status & 0x80 != 0)
        }
    }

    /// Exited with status 0.
    public var isSuccess: Bool { self == .exited(0) }

    /// "exited with status 3", "killed by SIGSEGV (core dumped)".
    public var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal, let core): "killed by \(Self.signalName(signal))\(core ? " (core dumped)" : "")"
        }
    }

    /// "status 3" or "SIGSEGV": short, for the `result` of an audit row.
    public var summary: String {
        switch self {
        case .exited(let code): "status \(code)"
        case .signaled(let signal, _): Self.signalName(signal)
        }
    }

    /// "SIGSEGV", or "signal 40" for one without a name here.
    public static func signalName(_ signal: CInt) -> String {
        let names: [CInt: String] = [
            SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP", SIGABRT: "SIGABRT",
            SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1", SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2",
            SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM", SIGCHLD: "SIGCHLD", SIGCONT: "SIGCONT", SIGSTOP: "SIGSTOP",
            SIGTSTP: "SIGTSTP", SIGTTIN: "SIGTTIN", SIGTTOU: "SIGTTOU", SIGURG: "SIGURG", SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ",
            SIGVTALRM: "SIGVTALRM", SIGPROF: "SIGPROF", SIGWINCH: "SIGWINCH", SIGIO: "SIGIO", SIGPWR: "SIGPWR", SIGSYS: "SIGSYS",
        ]
        return names[signal] ?? "signal \(signal)"
    }
}
