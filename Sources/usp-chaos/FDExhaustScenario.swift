import ArgumentParser
import Synchronization

/// 6. Descriptor exhaustion: uspd runs under a small RLIMIT_NOFILE (scripts/chaos.sh starts it
/// under `prlimit --nofile=256:256`) and is saturated with idle connections. Target: uspd's CPU
/// stays below 10 % while it is out of descriptors (it must not spin on accept), and once the
/// attacker lets go a legitimate session succeeds within 1 s.
struct FDExhaust: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fdexhaust", abstract: "Idle connections past uspd's descriptor limit; its CPU, then its recovery.")

    @OptionGroup var target: TargetOptions
    @Option(help: "Idle connections (well past uspd's descriptor limit).") var connections = 600
    @Option(help: "Attacker source addresses (each in its own /24).") var sources = 6

    func run() async throws {
        let chaos = try Chaos(target)
        let addresses = SourceAddresses(count: sources, networks: sources, base: 40)
        let swarm = RawSwarm(pools: [
            .init(sources: addresses, slots: connections, sendMessage1: false, closeOnAnswer: false, maxRate: 2000),
        ], server: chaos.address, loop: chaos.attackGroup.next())
        let client = try chaos.legitClient(.echo)

        let run = await Siege(swarm, chaos: chaos, warmup: chaos.pick(target.warmup, short: 2, long: 3),
                              duration: max(5, chaos.pick(target.duration, short: 5, long: 10)), legit: nil, successLimit: 0)
        let recovery = await Self.recovery(client)
        let saturated = run.after

        var report = Report(scenario: "fdexhaust", window: run.window)
        report.figures.insert("recovered in \(recovery.map(Report.seconds) ?? "never (5s)")", at: 0)
        report.figures.append("attack \(saturated[0].established) connections held, \(addresses.summary)")
        report.details.append("fdexhaust: \(saturated[0].attempts) connects, \(saturated[0].connected) connected, \(saturated[0].closedByServer) closed by uspd, \(saturated[0].connectFailed) connect failures")
        report.target = "uspd cpu < 10% while saturated, legit ≤ 1s after release"
        report.check("uspd cpu ≥ 10%", (run.window.uspdCPU ?? 100) < 10)
        report.check("no recovery within 1s", (recovery ?? .infinity) <= 1)
        try finish(report)
    }

    /// From the attacker's release, a legitimate attempt every 100 ms (each in its own task) until
    /// one succeeds or 5 s pass: seconds from the release to the first success.
    static func recovery(_ client: LegitClient) async -> Double? {
        let released = Monotonic.now()
        let first = FirstSuccess()
        while Monotonic.now() - released < 5, first.seconds == nil {
            Task {
                guard (try? await client.attempt()) != nil else { return }
                first.record(Monotonic.now() - released)
            }
            await Monotonic.sleep(0.1)
        }
        await Monotonic.sleep(0.2)
        return first.seconds
    }
}

/// The earliest of several concurrent successes.
private final class FirstSuccess: Sendable {
    private let earliest = Mutex<Double?>(nil)
    var seconds: Double? { earliest.withLock { $0 } }
    func record(_ t: Double) { earliest.withLock { $0 = min($0 ?? t, t) } }
}
