#if canImport(Glibc)
import Glibc
#endif

/// Whether a process that is not our child still runs: for waiting until a daemon that was
/// asked to stop is gone.
public enum ProcessLiveness {
    /// `pid` exists and is not a zombie (a zombie has exited and waits for its parent to reap
    /// it; where nothing reaps orphans, as in some containers, it stays one).
    public static func isRunning(_ pid: pid_t) -> Bool {
        guard pid > 0 else { return false }
        if kill(pid, 0) != 0, errno == ESRCH { return false }
        return state(pid) != UInt8(ascii: "Z")
    }

    /// Waits up to `timeout` seconds for `pid` to stop running; true once it has.
    public static func waitUntilGone(_ pid: pid_t, timeout: Double) -> Bool {
        let step: useconds_t = 20_000
        for _ in 0..<max(1, Int(timeout * 1_000_000) / Int(step)) {
            if !isRunning(pid) { return true }
            usleep(step)
        }
        return !isRunning(pid)
    }

    /// The state letter of /proc/PID/stat, or nil.
    static func state(_ pid: pid_t) -> UInt8? {
        ProcessExecutable.statFields(of: pid)?.first?.first
    }
}
