import Logging
import Synchronization

/// Keeps a flood of the same log line (load shedding, a full disk) from becoming a flood of
/// output: per kind of line, at most `burst` lines per `interval` seconds are written; the rest
/// are counted and summed up as "N similar line(s) suppressed" with the next line of that kind
/// written.
public final class RepeatedLogLimiter: Sendable {
    public let burst: Int
    public let interval: Double
    public let maxKinds: Int

    private struct Window {
        var start: Double
        var written: Int
        var suppressed: Int
    }

    private let windows = Mutex<[String: Window]>([:])

    public init(burst: Int = 5, interval: Double = 10, maxKinds: Int = 1024) {
        self.burst = max(1, burst)
        self.interval = interval
        self.maxKinds = maxKinds
    }

    /// Whether a line of `kind` may be written at `now` (monotonic seconds), and how many lines of
    /// that kind were suppressed since the last one written (to say so first).
    public func admit(_ kind: String, now: Double) -> (write: Bool, suppressed: Int) {
        windows.withLock { w in
            var window = w[kind] ?? Window(start: now, written: 0, suppressed: 0)
            if now - window.start >= interval {
                window.start = now
                window.written = 0
            }
            guard window.written < burst else {
                window.suppressed += 1
                w[kind] = window
                return (false, 0)
            }
            let suppressed = window.suppressed
            window.written += 1
            window.suppressed = 0
            if w[kind] == nil, w.count >= maxKinds {
                // Forget the stalest kinds; their counts are lost, not their lines.
                let stale = w.sorted { $0.value.start < $1.value.start }.prefix(w.count / 2).map(\.key)
                for key in stale { w[key] = nil }
            }
            w[kind] = window
            return (true, suppressed)
        }
    }

    /// Writes `message` at `level` under this limiter, keyed by `kind`.
    public func log(_ logger: Logger, _ level: Logger.Level, kind: String, now: Double, _ message: @autoclosure () -> String) {
        let (write, suppressed) = admit(kind, now: now)
        guard write else { return }
        if suppressed > 0 { logger.log(level: level, "\(suppressed) similar line(s) suppressed (\(kind))") }
        logger.log(level: level, "\(message())")
    }
}
