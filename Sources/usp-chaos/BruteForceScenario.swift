import ArgumentParser

/// 5. Password guessing against a known user from one attacker /24, as fast as uspd answers,
/// while the real user logs in with the right password from 127.0.0.1. Target: ≥ 95 % of the
/// real user's logins succeed within 2 s each.
struct BruteForce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bruteforce", abstract: "Password guessing from one /24 while the real user logs in.")

    @OptionGroup var target: TargetOptions
    @Option(help: "The user attacked (and the real user who logs in).") var user = "alice"
    @Option(help: "The real user's password.") var password: String
    @Option(help: "Guessing sessions at once.") var workers = 32
    @Option(help: "Attacker source addresses, all in one /24.") var sources = 16

    func run() async throws {
        let chaos = try Chaos(target)
        let swarm = BruteForceSwarm.guessing(user: user, workers: workers, sources: sources, chaos: chaos)
        let legit = LegitLoad(client: try chaos.legitClient(.passwordLogin(user: user, password: password)), rate: target.legitRate ?? 2)
        let run = await Siege(swarm, chaos: chaos, warmup: chaos.pick(target.warmup, short: 3, long: 5),
                              duration: chaos.pick(target.duration, short: 15, long: 60), legit: legit, successLimit: 2)
        let (before, after, seconds) = (run.before, run.after, run.window.seconds)
        let guesses = after.guesses - before.guesses
        var report = Report(scenario: "bruteforce", window: run.window)
        report.figures.append("attack \(Report.rate(guesses, over: seconds)) guesses, \(Report.rate(after.connections - before.connections, over: seconds)) connects, \(swarm.plan.sources.summary)")
        let answers = after.answers.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value - (before.answers[$0.key] ?? 0))" }
        report.details.append("bruteforce: \(guesses) guesses answered (\(answers.joined(separator: ", "))), \(after.sessionsEnded - before.sessionsEnded) sessions ended by uspd, \(after.connectFailures - before.connectFailures) connect failures")
        report.target = "\(user) ≥ 95% within 2s"
        report.check("legit < 95%", run.window.legit!.successPercent >= 95)
        report.check("a guess was accepted", after.answers["accepted"] == nil)
        try finish(report)
    }
}

extension BruteForceSwarm {
    /// The attacker of `bruteforce` and `audit`: `workers` sessions from `sources` addresses of 127.30.0.0/24.
    static func guessing(user: String, workers: Int, sources: Int, chaos: Chaos) -> BruteForceSwarm {
        BruteForceSwarm(plan: .init(sources: SourceAddresses(count: sources, networks: 1, base: 30), workers: workers, user: user,
                                    server: chaos.server, home: chaos.attackerHome),
                        group: chaos.attackGroup)
    }
}
