/// What an application-session request asks for: `begin`, `end`, or any other value the
/// application protocol defines. On the wire a non-empty string of at most
/// `SessionMessage.Limits.maxActionLength` bytes with no control characters.
public struct ApplicationAction: RawRepresentable, Hashable, Sendable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    /// Start the application bound to the token on a new stream.
    public static let begin = ApplicationAction("begin")
    /// End the application session bound to the token.
    public static let end = ApplicationAction("end")

    public var description: String { rawValue }
}

extension ApplicationAction {
    static func check(_ action: String, _ path: MessagePath) throws(USPError) {
        guard !action.isEmpty else { throw path.malformed("empty action") }
        let n = action.utf8.count
        guard n <= SessionMessage.Limits.maxActionLength else {
            throw path.malformed("action is \(n) bytes, limit \(SessionMessage.Limits.maxActionLength)")
        }
        guard !action.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) else {
            throw path.malformed("action contains control characters")
        }
    }
}
