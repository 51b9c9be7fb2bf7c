import Synchronization

/// What the legitimate client saw: one outcome per attempt, in seconds from "start connecting"
/// to the first echoed byte (or the login's success).
final class LegitSamples: Sendable {
    struct Figures: Sendable {
        let attempts: Int
        /// Succeeded within the success limit.
        let succeeded: Int
        /// Latencies of every success, slow ones included, sorted: the percentiles' sample.
        let latencies: [Double]
        /// Failures by reason ("timeout", "handshake_rejected", "slow 2.4s"…), most frequent first.
        let failures: [(reason: String, count: Int)]

        var successPercent: Double { attempts == 0 ? 0 : 100 * Double(succeeded) / Double(attempts) }
        var p50: Double? { percentile(0.50) }
        var p99: Double? { percentile(0.99) }
        var max: Double? { latencies.last }

        /// Nearest-rank percentile of the successful attempts (slow ones included).
        func percentile(_ q: Double) -> Double? {
            guard !latencies.isEmpty else { return nil }
            let rank = Int((q * Double(latencies.count)).rounded(.up))
            return latencies[Swift.max(0, Swift.min(latencies.count - 1, rank - 1))]
        }
    }

    private struct State {
        var started = 0
        var latencies: [Double] = []
        var failures: [String: Int] = [:]
    }

    /// A success slower than this counts as a failure ("slow"), though its latency still counts
    /// in the percentiles.
    let successLimit: Double
    private let state = Mutex(State())

    init(successLimit: Double) {
        self.successLimit = successLimit
    }

    func started() { state.withLock { $0.started += 1 } }

    func succeeded(after seconds: Double) {
        state.withLock { $0.latencies.append(seconds) }
    }

    func failed(_ reason: String) { state.withLock { $0.failures[reason, default: 0] += 1 } }

    /// Attempts with an outcome so far.
    var finished: Int { state.withLock { s in s.latencies.count + s.failures.values.reduce(0, +) } }

    /// The figures; attempts still without an outcome count as timeouts.
    func figures() -> Figures {
        state.withLock { s in
            var failures = s.failures
            let pending = s.started - s.latencies.count - failures.values.reduce(0, +)
            if pending > 0 { failures["timeout", default: 0] += pending }
            let slow = s.latencies.filter { $0 > successLimit }.count
            if slow > 0 { failures["slow (> \(Report.seconds(successLimit)))", default: 0] += slow }
            return Figures(attempts: s.started, succeeded: s.latencies.count - slow, latencies: s.latencies.sorted(),
                           failures: failures.map { ($0.key, $0.value) }.sorted { $0.count > $1.count })
        }
    }
}
