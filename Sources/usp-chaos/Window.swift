/// One measurement window: uspd's CPU (and this tool's), the database growth, and what the
/// legitimate client saw in between.
struct Window: Sendable {
    let seconds: Double
    /// % of one core over the window.
    let uspdCPU: Double?
    let toolCPU: Double?
    let databaseGrowth: Int
    /// Connections the kernel dropped because uspd's listen queue was full.
    let listenOverflows: Int
    let legit: LegitSamples.Figures?
    let uspdAlive: Bool

    /// Runs `legit` at its rate for `seconds` (or just waits), reading the probes before and after.
    static func measure(_ chaos: Chaos, seconds: Double, legit: LegitLoad?, successLimit: Double) async -> Window {
        let u0 = chaos.uspd.read(), m0 = chaos.me.read()
        var figures: LegitSamples.Figures?
        if let legit {
            let samples = LegitSamples(successLimit: successLimit)
            await legit.run(for: seconds, into: samples)
            figures = samples.figures()
        } else {
            await Monotonic.sleep(seconds)
        }
        let u1 = chaos.uspd.read(), m1 = chaos.me.read()
        return Window(seconds: u1.time - u0.time, uspdCPU: ServerProbe.cpuPercent(from: u0, to: u1),
                      toolCPU: ServerProbe.cpuPercent(from: m0, to: m1), databaseGrowth: u1.databaseBytes - u0.databaseBytes,
                      listenOverflows: u1.listenOverflows - u0.listenOverflows, legit: figures, uspdAlive: chaos.uspd.isAlive)
    }
}
