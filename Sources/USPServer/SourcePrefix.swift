#if canImport(Glibc)
import Glibc
#endif

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
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            return masked(withUnsafeBytes(of: &v4) { Array($0) }, bits: v4Bits, family: AF_INET)
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, address, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
                return masked(Array(bytes[12...]), bits: v4Bits, family: AF_INET)
            }
            return masked(bytes, bits: v6Bits, family: AF_INET6)
        }
        return address
    }

    private static func masked(_ bytes: [UInt8], bits: Int, family: Int32) -> String {
        let bits = max(0, min(bits, bytes.count * 8))
        var out = bytes
        for i in out.indices {
            let keep = max(0, min(8, bits - i * 8))
            out[i] &= keep == 8 ? 0xff : UInt8(truncatingIfNeeded: 0xff << (8 - keep))
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = out.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/\(bits)"
    }
}
