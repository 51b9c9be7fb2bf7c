/// A wall-clock instant passed into the core by its caller. The core never reads a clock.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Seconds since the Unix epoch.
    public var seconds: UInt64
    /// Nanoseconds within the second, below 1_000_000_000.
    public var nanoseconds: UInt32

    public init(seconds: UInt64, nanoseconds: UInt32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static let zero = Timestamp(seconds: 0)

    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }

    /// Signed distance in seconds from `other` to `self`.
    public func seconds(since other: Timestamp) -> Double {
        (Double(seconds) - Double(other.seconds)) + (Double(nanoseconds) - Double(other.nanoseconds)) / 1e9
    }

    public var description: String { "\(seconds).\(nanoseconds)" }
}
