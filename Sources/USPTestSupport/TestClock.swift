import Synchronization

/// A settable monotonic clock for the login throttle.
public final class TestClock: Sendable {
    private let value = Mutex(1000.0)
    public init() {}
    public var now: Double { value.withLock { $0 } }
    public func advance(_ seconds: Double) { value.withLock { $0 += seconds } }
}
