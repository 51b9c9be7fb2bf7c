import ArgumentParser

/// 3. Reconnect storm: a few hundred sockets from two addresses, each opened again the moment
/// uspd closes it (no pause, no rate limit of its own). Legitimate echo sessions meanwhile.
/// Target: ≥ 95 % succeed.
struct Reconnect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sockets from two addresses, each reconnected as soon as uspd closes it.")

    @OptionGroup var target: TargetOptions
    @Option(help: "Sockets held at once.") var sockets = 300
    @Option(help: "Attacker source addresses (each in its own /24).") var sources = 2

    func run() async throws {
        let chaos = try Chaos(target)
        let addresses = SourceAddresses(count: sources, networks: sources, base: 9)
        let swarm = RawSwarm(pools: [.init(sources: addresses, slots: sockets, sendMessage1: false, closeOnAnswer: false, maxRate: nil)],
                             server: chaos.address, loop: chaos.attackGroup.next())
        let run = await Siege(swarm, chaos: chaos, warmup: chaos.pick(target.warmup, short: 3, long: 5),
                              duration: chaos.pick(target.duration, short: 12, long: 60), legit: try chaos.echoLoad(), successLimit: target.legitTimeout)
        let d = run.after[0] - run.before[0]
        var report = Report(scenario: "reconnect", window: run.window)
        report.figures.append("attack \(Report.rate(d.attempts, over: run.window.seconds)) reconnects, \(run.after[0].established) open now, \(addresses.summary)")
        report.details.append("reconnect: \(d.attempts) connects, \(d.closedByServer) closed by uspd, \(d.connectFailed) connect failures")
        report.target = "legit ≥ 95%"
        report.check("legit < 95%", run.window.legit!.successPercent >= 95)
        try finish(report)
    }
}
