import Foundation

/// When a stealth server ends a connection that never proved it knows the server key: a time after
/// accept drawn from this distribution, independent of anything the connection sent
/// (`silent_hold_min`, `silent_hold_max`, `silent_hold_distribution` in uspd.toml).
public struct SilentHoldTime: Hashable, Sendable {
    public enum Distribution: String, Hashable, Sendable {
        /// Every time in [minimum, maximum] equally likely.
        case uniform
        /// The logarithm of the time is uniform: short holds are as likely per octave as long ones,
        /// a spread like that of the idle timeouts real servers use.
        case logUniform = "log-uniform"
    }

    /// Seconds.
    public var minimum: Double = 15
    public var maximum: Double = 90
    public var distribution: Distribution = .logUniform

    public init(minimum: Double = 15, maximum: Double = 90, distribution: Distribution = .logUniform) {
        self.minimum = minimum
        self.maximum = maximum
        self.distribution = distribution
    }

    /// One hold, in seconds.
    public func draw(using generator: inout some RandomNumberGenerator) -> Double {
        guard maximum > minimum else { return minimum }
        switch distribution {
        case .uniform:
            return Double.random(in: minimum...maximum, using: &generator)
        case .logUniform:
            return exp(Double.random(in: log(minimum)...log(maximum), using: &generator))
        }
    }
}
