import ArgumentParser

/// 2. Idle connections: thousands of TCP connections from a few addresses that connect and send
/// nothing, each replaced when uspd closes it. Legitimate echo sessions meanwhile. Target: all succeed.
struct Idle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Thousands of idle TCP connections from a few addresses.")

    @OptionGroup var target: TargetOptions
    @Option(help: "Idle connections to hold.") var connections = 5000
    @Option(help: "Attacker source addresses.") var sources = 25
    @Option(help: "…spread over this many /24s.") var networks = 25
    @Option(name: .customLong("max-rate"), help: "New connections per second at most (refills included).") var maxRate = 1000.0

    func run() async throws {
        let chaos = try Chaos(target)
        let addresses = SourceAddresses(count: sources, networks: networks)
        let swarm = RawSwarm(pools: [.init(sources: addresses, slots: connections, sendMessage1: false, closeOnAnswer: false, maxRate: maxRate)],
                             server: chaos.address, loop: chaos.attackGroup.next())
        // The warm-up is long enough to open them all at the rate allowed.
        let run = await Siege(swarm, chaos: chaos, warmup: chaos.pick(target.warmup, short: 1, long: 2) + Double(connections) / maxRate,
                              duration: chaos.pick(target.duration, short: 12, long: 60), legit: try chaos.echoLoad(), successLimit: target.legitTimeout)
        let d = run.after[0] - run.before[0], seconds = run.window.seconds
        var report = Report(scenario: "idle", window: run.window)
        report.figures.append("attack \(run.after[0].established) open now (peak \(run.after[0].peakEstablished)), \(Report.rate(d.attempts, over: seconds)) connects, \(Report.rate(d.closedByServer, over: seconds)) closed by uspd, \(addresses.summary)")
        report.details.append("idle: \(d.attempts) connects, \(d.connected) connected, \(d.closedByServer) closed by uspd, \(d.connectFailed) connect failures")
        report.target = "legit 100%"
        let legit = run.window.legit!
        report.check("legit < 100%", legit.attempts > 0 && legit.succeeded == legit.attempts)
        try finish(report)
    }
}
