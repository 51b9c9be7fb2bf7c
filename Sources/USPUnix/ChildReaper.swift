import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Reaps every `ChildProcess`: a sweep of `waitpid(pid, WNOHANG)` over the children still
/// running, every 100 ms while there are any. Polling rather than SIGCHLD: a SIGCHLD handler is
/// process-wide state that a library (or a test harness) may also claim, and a signal can be
/// coalesced; a sweep of this process's own pids cannot miss one or take another's child.
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
