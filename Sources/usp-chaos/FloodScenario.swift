import ArgumentParser

/// 1. A handshake flood from many networks: each attacker connection sends a random 1024-byte
/// message 1 (a first-contact XX message 1, which a default uspd answers with 160 bytes), then
/// one pool closes as soon as the answer is in and opens the next (hit and run, as fast as it
/// can), the other holds its connections until uspd closes them. Legitimate echo sessions from
/// 127.0.0.1 meanwhile. Target: ≥ 95 % succeed, p99 ≤ 2 s.
struct Flood: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Handshake flood (random message 1) from many source networks.")

    @OptionGroup var target: TargetOptions
    @OptionGroup var flood: FloodOptions

    func run() async throws {
        let chaos = try Chaos(target)
        let run = await Siege(flood.swarm(chaos), chaos: chaos, warmup: chaos.pick(target.warmup, short: 3, long: 5),
                              duration: chaos.pick(target.duration, short: 15, long: 60), legit: try chaos.echoLoad(), successLimit: target.legitTimeout)
        let hit = run.after[0] - run.before[0], hold = run.after[1] - run.before[1]
        let seconds = run.window.seconds
        var report = Report(scenario: "flood", window: run.window)
        report.figures.append("attack \(Report.rate(hit.attempts + hold.attempts, over: seconds)) conns, \(Report.rate(hit.answered + hold.answered, over: seconds)) answered, \(run.after[1].established) held, \(flood.addresses.summary)")
        report.details.append("hit-and-run: \(hit.attempts) connects, \(hit.answered) answered, \(hit.closedUnanswered) closed unanswered, \(hit.connectFailed) connect failures")
        report.details.append("holders: \(hold.attempts) connects, \(hold.answered) answered, \(hold.closedByServer) closed by uspd (\(hold.closedUnanswered) unanswered), \(hold.connectFailed) connect failures, peak held \(run.after[1].peakEstablished)")
        report.target = "legit ≥ 95%, p99 ≤ 2s"
        report.check("legit < 95%", run.window.legit!.successPercent >= 95)
        report.check("p99 > 2s", (run.window.legit!.p99 ?? .infinity) <= 2)
        try finish(report)
    }
}

/// The flood's attacker, shared with `audit`: two pools of random message 1s from the same
/// addresses, one hit and run, one holding.
struct FloodOptions: ParsableArguments {
    @Option(help: "Attacker source addresses.") var sources = 750
    @Option(help: "…spread over this many /24s.") var networks = 250
    @Option(name: .customLong("hit-slots"), help: "Hit-and-run connections in flight at once.") var hitSlots = 512
    @Option(name: .customLong("hold-slots"), help: "Connections that send message 1 and hold.") var holdSlots = 1000

    var addresses: SourceAddresses { SourceAddresses(count: sources, networks: networks) }

    func swarm(_ chaos: Chaos) -> RawSwarm {
        RawSwarm(pools: [
            .init(sources: addresses, slots: hitSlots, sendMessage1: true, closeOnAnswer: true, maxRate: nil),
            .init(sources: addresses, slots: holdSlots, sendMessage1: true, closeOnAnswer: false, maxRate: nil),
        ], server: chaos.address, loop: chaos.attackGroup.next())
    }
}
