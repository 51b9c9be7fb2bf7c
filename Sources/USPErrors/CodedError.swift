/// The shape of every module's error: a stable `code` to compare, and a `description` that is
/// one line for a person (what failed, where, and what to do about it).
///
/// Two errors are equal when their codes are: callers compare codes, never the wording of
/// messages. An error whose identity needs more than its code (an `errno`) says so by
/// implementing `==` and `hash(into:)` itself.
public protocol CodedError: Error, Hashable, Sendable, CustomStringConvertible {
    var code: ErrorCode<Self> { get }
}

extension CodedError {
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
