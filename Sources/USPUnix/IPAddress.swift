#if canImport(Glibc)
import Glibc
#endif

/// An IP address in the form uspd compares addresses in: the bytes of an IPv4 address (4) or an
/// IPv6 address (16), with IPv4-mapped IPv6 addresses (`::ffff:192.0.2.7`) taken as the IPv4
/// address they carry, as uspd reports a client's address.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Parses dotted-decimal IPv4 or RFC 4291 IPv6 text (no zone, no brackets); nil otherwise.
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 0xff, b[11] == 0xff {
            bytes = Array(b[12...])
        } else {
            bytes = b
        }
    }

    /// The address of these 4 (IPv4) or 16 (IPv6) bytes.
    public init(bytes: [UInt8]) {
        precondition(bytes.count == 4 || bytes.count == 16, "an IP address is 4 or 16 bytes")
        self.bytes = bytes
    }

    public var isIPv4: Bool { bytes.count == 4 }

    /// The canonical text: dotted decimal, or RFC 5952 (lower case, longest zero run compressed).
    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = isIPv4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
