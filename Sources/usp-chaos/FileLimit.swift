import Glibc

/// The attacker holds thousands of sockets: its soft RLIMIT_NOFILE goes up to the hard limit (and
/// the hard limit too, where the process may raise it).
enum FileLimit {
    /// Raises the limit to at least `wanted` if it can; returns the soft limit in force.
    @discardableResult
    static func raise(to wanted: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        let target = rlim_t(wanted)
        if limit.rlim_max < target {
            var higher = rlimit(rlim_cur: target, rlim_max: target)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &higher) == 0 { return wanted }
        }
        limit.rlim_cur = min(max(limit.rlim_cur, target), limit.rlim_max)
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return Int(limit.rlim_cur)
    }
}
