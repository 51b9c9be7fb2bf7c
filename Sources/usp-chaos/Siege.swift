/// An attacker a scenario can run: start it, read its counters, let go.
protocol Attack: Sendable {
    /// What `snapshot` reads: the attacker's counters since start.
    associatedtype Snapshot: Sendable
    func start()
    func snapshot() async -> Snapshot
    /// Closes every connection and opens no more.
    func stop() async
}

extension RawSwarm: Attack { typealias Snapshot = [Counters] }
extension AnonymousSwarm: Attack { typealias Snapshot = Counters }
extension BruteForceSwarm: Attack { typealias Snapshot = Counters }

/// The shape of the scenarios: the attack runs `warmup` seconds, then for `duration` seconds the
/// legitimate client works while uspd is watched (`Window`), then the attacker lets go. The
/// attacker's counters are read as the window opens and as it closes.
struct Siege<A: Attack> {
    let before: A.Snapshot
    let after: A.Snapshot
    let window: Window

    init(_ attack: A, chaos: Chaos, warmup: Double, duration: Double, legit: LegitLoad?, successLimit: Double) async {
        attack.start()
        await Monotonic.sleep(warmup)
        before = await attack.snapshot()
        window = await Window.measure(chaos, seconds: duration, legit: legit, successLimit: successLimit)
        after = await attack.snapshot()
        await attack.stop()
    }
}
