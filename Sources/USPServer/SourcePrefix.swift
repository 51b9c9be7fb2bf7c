import USPConfig
import USPUnix

/// The network a client address belongs to, as text: the address with its host bits cleared
/// and the prefix length, e.g. `192.0.2.0/24` or `2001:db8:1:2::/64`. Used where one person is
/// expected to stay within a network while their exact address may change.
public enum SourcePrefix {
    /// How much of an address names its network: `v4` bits of IPv4 (and IPv4-mapped IPv6),
    /// `v6` bits of IPv6 (`source_prefix_v4`, `source_prefix_v6` in uspd.toml).
    public struct Lengths: Hashable, Sendable {
        public var v4: Int
        public var v6: Int
        public init(v4: Int = 24, v6: Int = 64) {
            self.v4 = v4
            self.v6 = v6
        }
    }

    public static func of(_ address: String, lengths: Lengths) -> String {
        of(address, v4Bits: lengths.v4, v6Bits: lengths.v6)
    }

    /// `address`'s prefix of `v4Bits` (IPv4, and IPv4-mapped IPv6) or `v6Bits` (IPv6); an
    /// address that does not parse is its own prefix.
    public static func of(_ address: String, v4Bits: Int = 24, v6Bits: Int = 64) -> String {
        guard let parsed = IPAddress(address) else { return address }
        return IPNetwork(masking: parsed, prefixLength: parsed.isIPv4 ? v4Bits : v6Bits).description
    }
}
