/// A position in the application menu. Index 0 is reserved for authentication (before login)
/// or token invalidation (after login); indices 1 and up are applications, with no fixed
/// meaning across servers. On the wire an index is a JSON object key holding the canonical
/// decimal form of a u32: "0", "1", "12", never "01", "+1", " 1" or "4294967296".
public struct ServiceIndex: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible,
    ExpressibleByIntegerLiteral
{
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt32) { self.rawValue = value }

    /// Index 0: authentication methods, or token invalidation once authenticated.
    public static let authentication = ServiceIndex(0)

    public var isAuthentication: Bool { rawValue == 0 }

    /// The JSON object key for this index.
    public var key: String { String(rawValue) }

    /// Parses a JSON object key; nil unless it is the canonical decimal form of a u32.
    public init?(key: some StringProtocol) {
        let utf8 = key.utf8
        guard let first = utf8.first, utf8.count <= 10 else { return nil }
        if first == UInt8(ascii: "0") && utf8.count > 1 { return nil }
        var value: UInt64 = 0
        for b in utf8 {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(b - UInt8(ascii: "0"))
        }
        guard let v = UInt32(exactly: value) else { return nil }
        self.rawValue = v
    }

    public static func < (lhs: ServiceIndex, rhs: ServiceIndex) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { key }
}
