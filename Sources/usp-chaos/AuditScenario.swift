import ArgumentParser
import Foundation

/// 7. Audit trail growth under attack: the flood of `flood` and the guessing of `bruteforce` at
/// once, while uspd's database is watched. Target: at most 1 MB added to the database's content
/// (its used pages, read with sqlite3) over 10 minutes (the long run); a short run reports the
/// growth against that pace and fails only past 1 MB, which is unbounded growth by any measure.
/// The files' sizes are reported too: the -wal file is a scratch area that SQLite fills up to
/// uspd's checkpoint threshold (4 MB) and then reuses, whatever the load.
struct AuditGrowth: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "Database growth during a flood plus password guessing.")

    @OptionGroup var target: TargetOptions
    @OptionGroup var floodOptions: FloodOptions
    @Option(help: "The user whose password is guessed.") var user = "alice"
    @Option(help: "Guessing sessions at once.") var workers = 32

    static let budget = 1_048_576
    static let budgetSeconds = 600.0

    func run() async throws {
        let chaos = try Chaos(target)
        let flood = floodOptions.swarm(chaos)
        let guessing = BruteForceSwarm.guessing(user: user, workers: workers, sources: 16, chaos: chaos)
        let duration = chaos.pick(target.duration, short: 60, long: Self.budgetSeconds)

        let start = chaos.uspd.read(), me0 = chaos.me.read()
        let content0 = chaos.uspd.contentBytes()
        flood.start()
        guessing.start()
        var peak = start.databaseBytes
        var middle: ServerProbe.Reading?
        while Monotonic.now() - start.time < duration {
            await Monotonic.sleep(min(1, duration - (Monotonic.now() - start.time)))
            let now = chaos.uspd.read()
            peak = max(peak, now.databaseBytes)
            if middle == nil, now.time - start.time >= duration / 2 { middle = now }
        }
        let during = chaos.uspd.read(), me1 = chaos.me.read()
        let floodCounts = await flood.snapshot(), guessCounts = await guessing.snapshot()
        await flood.stop()
        await guessing.stop()
        await Monotonic.sleep(2)  // what uspd still had queued reaches the file
        let end = chaos.uspd.read()
        peak = max(peak, end.databaseBytes)
        let content1 = chaos.uspd.contentBytes()
        let contentGrowth = content0.flatMap { c0 in content1.map { $0 - c0 } }

        let window = Window(seconds: during.time - start.time, uspdCPU: ServerProbe.cpuPercent(from: start, to: during),
                            toolCPU: ServerProbe.cpuPercent(from: me0, to: me1),
                            databaseGrowth: contentGrowth ?? (end.databaseBytes - start.databaseBytes),
                            listenOverflows: during.listenOverflows - start.listenOverflows, legit: nil, uspdAlive: chaos.uspd.isAlive)
        let pace = Int(Double(Self.budget) * window.seconds / Self.budgetSeconds)
        var report = Report(scenario: "audit", window: window)
        let files = zip(chaos.uspd.databaseFiles, zip(end.fileBytes, start.fileBytes)).map { "\(($0 as NSString).lastPathComponent) \(Report.signedBytes($1.0 - $1.1))" }
        let secondHalf = middle.map { Report.signedBytes(end.databaseBytes - $0.databaseBytes) } ?? "-"
        report.figures.append("content \(contentGrowth.map(Report.signedBytes) ?? "unknown (no sqlite3): files instead"); files \(files.joined(separator: ", ")), peak \(Report.signedBytes(peak - start.databaseBytes)), second half \(secondHalf)")
        let connects = floodCounts.reduce(0) { $0 + $1.attempts }
        report.figures.append("attack \(Report.rate(connects, over: window.seconds)) conns + \(Report.rate(guessCounts.guesses, over: window.seconds)) guesses over \(Int(window.seconds.rounded()))s")
        if window.seconds + 1 < Self.budgetSeconds {
            report.target = "≤ \(Report.bytes(Self.budget)) per \(Int(Self.budgetSeconds))s: \(Report.bytes(pace)) pace for \(Int(window.seconds.rounded()))s (\(window.databaseGrowth <= pace ? "within" : "OVER") pace), fails past \(Report.bytes(Self.budget))"
        } else {
            report.target = "≤ \(Report.bytes(Self.budget)) in \(Int(Self.budgetSeconds))s"
        }
        report.check("db growth > \(Report.bytes(Self.budget))", window.databaseGrowth <= Self.budget)
        try finish(report)
    }
}
