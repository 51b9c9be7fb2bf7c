import NIOCore
import USPCore

/// Calls `tick` every `profile.tickMilliseconds` on an event loop while a session is shaped
/// (docs/PROTOCOL.md §4.1). One per connection; both the server's and the client's handler use it.
struct ShapingTicker {
    private var task: RepeatedTask?
    private(set) var profile: ShapingProfile?

    /// Starts ticking with `profile` (or changes the period), calling `tick` on `loop`.
    mutating func start(_ profile: ShapingProfile, on loop: any EventLoop, _ tick: @escaping () -> Void) {
        guard profile != self.profile else { return }
        task?.cancel()
        self.profile = profile
        let period = TimeAmount.milliseconds(Int64(profile.tickMilliseconds))
        let bound = NIOLoopBound(tick, eventLoop: loop)
        task = loop.scheduleRepeatedTask(initialDelay: .zero, delay: period) { _ in bound.value() }
    }

    mutating func stop() {
        task?.cancel()
        task = nil
        profile = nil
    }
}
