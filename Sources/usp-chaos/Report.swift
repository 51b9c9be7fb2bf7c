/// One scenario's result: the line scripts/chaos.sh prints (name, figures, target, PASS/FAIL),
/// and detail lines for the log.
struct Report {
    let scenario: String
    var figures: [String] = []
    var target = ""
    /// Each criterion and whether it held.
    var checks: [(name: String, passed: Bool)] = []
    var details: [String] = []

    var passed: Bool { checks.allSatisfy(\.passed) }

    /// A report that opens with the window's figures: the legitimate client's, uspd's CPU, the
    /// database growth.
    init(scenario: String, window: Window? = nil) {
        self.scenario = scenario
        guard let window else { return }
        if let legit = window.legit { add(legit: legit) }
        add(window: window)
    }

    mutating func check(_ name: String, _ passed: Bool) { checks.append((name, passed)) }

    var line: String {
        let failed = checks.filter { !$0.passed }.map(\.name)
        let verdict = passed ? "PASS" : "FAIL (\(failed.joined(separator: ", ")))"
        return "\(scenario.padding(toLength: 10, withPad: " ", startingAt: 0)) \(figures.joined(separator: " | ")) | target: \(target) | \(verdict)"
    }

    /// The legitimate client's figures: "legit 98.3% (118/120) p50 40ms p99 1.20s".
    mutating func add(legit f: LegitSamples.Figures) {
        let p = { (x: Double?) in x.map(Self.seconds) ?? "-" }
        figures.append("legit \(Self.percent(f.successPercent)) (\(f.succeeded)/\(f.attempts)) p50 \(p(f.p50)) p99 \(p(f.p99))")
        if !f.failures.isEmpty {
            details.append("legit failures: " + f.failures.map { "\($0.reason) \($0.count)" }.joined(separator: ", "))
        }
    }

    /// uspd's CPU, this tool's CPU, the database growth and the listen-queue drops over a window;
    /// a dead uspd fails.
    mutating func add(window w: Window) {
        figures.append("uspd cpu \(w.uspdCPU.map(Self.percent) ?? "-") (chaos \(w.toolCPU.map(Self.percent) ?? "-"))")
        figures.append("db \(Self.signedBytes(w.databaseGrowth))")
        figures.append("listen overflows \(Self.rate(w.listenOverflows, over: w.seconds))")
        if !w.uspdAlive { check("uspd died", false) }
    }

    static func seconds(_ s: Double) -> String {
        s < 1 ? "\(Int((s * 1000).rounded()))ms" : String(format: "%.2fs", s)
    }

    static func percent(_ p: Double) -> String {
        p >= 99.95 && p < 100 ? String(format: "%.2f%%", p) : String(format: "%.1f%%", p)
    }

    static func rate(_ count: Int, over seconds: Double) -> String {
        let r = seconds > 0 ? Double(count) / seconds : 0
        return r >= 100 ? "\(Int(r.rounded()))/s" : String(format: "%.1f/s", r)
    }

    static func signedBytes(_ n: Int) -> String { (n < 0 ? "-" : "+") + bytes(abs(n)) }

    static func bytes(_ n: Int) -> String {
        if n < 1024 { return "\(n) B" }
        if n < 1024 * 1024 { return String(format: "%.1f KB", Double(n) / 1024) }
        return String(format: "%.2f MB", Double(n) / 1_048_576)
    }
}
