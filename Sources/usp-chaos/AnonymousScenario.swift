import ArgumentParser

/// 4. Anonymous sessions filling the connection slots: real NK and XX handshakes with an
/// anonymous initial_request, then idling or PINGing, from a few addresses, more sessions than
/// uspd's max_connections (run uspd with a small one, e.g. 512). Legitimate echo sessions
/// meanwhile. Target: ≥ 95 % succeed.
struct Anonymous: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Anonymous menu sessions (NK, XX) that idle or PING, filling max_connections.")

    @OptionGroup var target: TargetOptions
    @Option(help: "Sessions to keep open (more than uspd's max_connections).") var sessions = 1024
    @Option(help: "Attacker source addresses (each in its own /24).") var sources = 17
    @Option(name: .customLong("max-rate"), help: "New connections per second at most (uspd's handshake_rate is 20 per address).") var maxRate: Double?
    @Option(name: .customLong("ping-interval"), help: "Seconds between PINGs of the sessions that PING (every other one).") var pingInterval = 1.0

    func run() async throws {
        let chaos = try Chaos(target)
        let addresses = SourceAddresses(count: sources, networks: sources, base: 20)
        let swarm = AnonymousSwarm(plan: .init(sources: addresses, slots: sessions, serverKey: chaos.serverKey, pingInterval: pingInterval,
                                               maxRate: maxRate ?? Double(20 * sources)),
                                   server: chaos.address, loop: chaos.attackGroup.next())
        let run = await Siege(swarm, chaos: chaos, warmup: chaos.pick(target.warmup, short: 5, long: 10),
                              duration: chaos.pick(target.duration, short: 15, long: 90), legit: try chaos.echoLoad(), successLimit: target.legitTimeout)
        let (before, after, seconds) = (run.before, run.after, run.window.seconds)
        let attempts = after.attempts - before.attempts
        var report = Report(scenario: "anonymous", window: run.window)
        report.figures.append("attack \(after.sessions) sessions open (peak \(after.peakSessions)), \(Report.rate(attempts, over: seconds)) connects, \(Report.rate(after.pings - before.pings, over: seconds)) pings, \(addresses.summary)")
        let endings = after.endings.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value - (before.endings[$0.key] ?? 0))" }
        report.details.append("anonymous: \(attempts) connects, \(after.established - before.established) sessions established, \(after.refused - before.refused) refused before the menu; sessions ended: \(endings.isEmpty ? "none" : endings.joined(separator: ", "))")
        report.target = "legit ≥ 95%"
        report.check("legit < 95%", run.window.legit!.successPercent >= 95)
        try finish(report)
    }
}
